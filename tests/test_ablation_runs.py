"""The ablation benchmark's run bookkeeping: committed results are reused only from bit-identical towers, and the
recipe's own bridge stage is not trained twice; the sample sheet marks events where they happen."""

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bridgedit import tiny
from bridgedit.synthetic import WorldSettings, render_clip
from bridgedit.synthetic.world import draw_scene
from bridgedit.synthetic.recipe import RecipeSettings

ABLATION = Path(__file__).resolve().parents[1] / "benchmarks" / "ablation.py"


def load_benchmark(path: Path):
    spec = importlib.util.spec_from_file_location(f"{path.stem}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_ablation():
    return load_benchmark(ABLATION)


def test_towers_fingerprint_changes_with_any_weight(tmp_path):
    ablation = load_ablation()
    pipe = tiny.bridgedit_pipeline(seed=0)
    pipe.save_pretrained(tmp_path / "a", copy_towers=True)
    pipe.save_pretrained(tmp_path / "b", copy_towers=True)
    with torch.no_grad():  # one element of one codec weight, far from the towers' transformers
        next(pipe.audio_pipe.vae.parameters()).view(-1)[0] += 1e-6
    pipe.save_pretrained(tmp_path / "c", copy_towers=True)

    first = ablation.towers_fingerprint(tmp_path / "a")
    assert len(first) == 64
    assert ablation.towers_fingerprint(tmp_path / "b") == first
    assert ablation.towers_fingerprint(tmp_path / "c") != first


def test_committed_result_is_reused_only_from_the_same_towers(tmp_path):
    ablation = load_ablation()
    path = tmp_path / "ablation-1200-lr0.005-independent-tb2" / "dca-seed0.json"
    assert ablation.committed_result(path, "f" * 64) is None  # nothing committed
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"variant": "dca", "seed": 0, "towers_fingerprint": "f" * 64, "scores": {"sync": 0.5}}))
    assert ablation.committed_result(path, "f" * 64)["scores"] == {"sync": 0.5}
    assert ablation.committed_result(path, "e" * 64) is None  # trained from other towers


def test_run_names_spell_out_every_varied_setting():
    ablation = load_ablation()
    base = RecipeSettings()
    name = ablation.run_name("dca", 1, base)
    assert name == (f"ablation-{base.bridge_steps}-lr{base.bridge_lr:g}-{base.bridge_timesteps}"
                    f"-tb{base.bridge['time_bias']:g}/dca-seed1")
    paper = replace(base, bridge_steps=150, bridge_lr=5e-4, bridge_timesteps="coupled",
                    bridge={**base.bridge, "time_bias": 0.0})
    assert ablation.run_name("dca (shared caption)", 0, paper) == "ablation-150-lr0.0005-coupled/dca_shared_caption-seed0"


def test_the_recipes_own_bridge_stage_is_reused(tmp_path):
    ablation = load_ablation()
    settings = RecipeSettings()
    assert ablation.recipe_run_name(tmp_path, settings) is None  # no recipe has run here
    (tmp_path / "recipe.json").write_text(json.dumps(settings.to_dict(), indent=2))
    dca_seed0 = ablation.variant_settings(settings, "dca", 0)
    assert ablation.recipe_run_name(tmp_path, dca_seed0) == "bridges"
    for other in (ablation.variant_settings(settings, "none", 0), ablation.variant_settings(settings, "dca", 1),
                  ablation.variant_settings(settings, "dca (shared caption)", 0),
                  replace(dca_seed0, bridge_steps=150)):
        assert ablation.recipe_run_name(tmp_path, other) is None


def test_sample_sheet_marks_a_true_clips_events_where_they_happen():
    sample_sheet = load_benchmark(ABLATION.parent / "sample_sheet.py")
    world = WorldSettings()
    scene = replace(draw_scene(np.random.default_rng(3), world), shape="ball", events=(0.2, 0.8))
    frames, audio = render_clip(scene, world, np.random.default_rng(3))

    marks = sample_sheet.event_marks(frames, audio, world.fps, world.sample_rate, list(scene.events))

    width = world.width  # at 15 fps an event at 0.2 s is in frame 3, one at 0.8 s in frame 12
    assert marks["filmstrip"]["true"] == [3.5 * width, 12.5 * width]
    assert marks["waveform"]["true"] == [0.2, 0.8]
    # a real clip's detected events are its true events: within one frame on the frames, a few ms in the audio
    assert len(marks["filmstrip"]["detected"]) == 2
    assert np.allclose(marks["filmstrip"]["detected"], marks["filmstrip"]["true"], atol=width)
    assert np.allclose(marks["waveform"]["detected"], [0.2, 0.8], atol=0.01)
