"""The ablation benchmark's run bookkeeping: committed results are reused only from bit-identical towers, and the
recipe's own bridge stage is not trained twice."""

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bridgedit import tiny
from bridgedit.synthetic.recipe import RecipeSettings
from bridgedit.training import trainer as trainer_module
from bridgedit.training.trainer import checkpoint_folder

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out

ABLATION = Path(__file__).resolve().parents[1] / "experiments" / "synthetic" / "ablation.py"
sys.path.insert(0, str(ABLATION.parent))  # the laboratory's scripts import its shared modules (runs.py) by name
import runs  # noqa: E402  (the laboratory's shared run bookkeeping)


def load_benchmark(path: Path):
    spec = importlib.util.spec_from_file_location(f"{path.stem}_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_ablation():
    return load_benchmark(ABLATION)


def test_towers_fingerprint_changes_with_any_weight(tmp_path):
    pipe = tiny.bridgedit_pipeline(seed=0)
    pipe.save_pretrained(tmp_path / "a", copy_towers=True)
    pipe.save_pretrained(tmp_path / "b", copy_towers=True)
    with torch.no_grad():  # one element of one codec weight, far from the towers' transformers
        next(pipe.audio_pipe.vae.parameters()).view(-1)[0] += 1e-6
    pipe.save_pretrained(tmp_path / "c", copy_towers=True)

    first = runs.towers_fingerprint(tmp_path / "a")
    assert len(first) == 64
    assert runs.towers_fingerprint(tmp_path / "b") == first
    assert runs.towers_fingerprint(tmp_path / "c") != first


def test_committed_result_is_reused_only_from_the_same_towers(tmp_path):
    path = tmp_path / "ablation-1200-lr0.005-independent-tb2" / "dca-seed0.json"
    assert runs.committed_result(path, "f" * 64) is None  # nothing committed
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"variant": "dca", "seed": 0, "towers_fingerprint": "f" * 64, "scores": {"sync": 0.5}}))
    assert runs.committed_result(path, "f" * 64)["scores"] == {"sync": 0.5}
    assert runs.committed_result(path, "e" * 64) is None  # trained from other towers


def test_run_names_spell_out_every_varied_setting():
    base = RecipeSettings(bridge_precision="fp32")  # the first tables' precision: their folders carry no precision
    name = runs.run_name("dca", 1, base)
    assert name == (
        f"ablation-{base.bridge_steps}-lr{base.bridge_lr:g}-{base.bridge_timesteps}"
        f"-tb{base.bridge['time_bias']:g}/dca-seed1"
    )
    paper = replace(
        base, bridge_steps=150, bridge_lr=5e-4, bridge_timesteps="coupled", bridge={**base.bridge, "time_bias": 0.0}
    )
    assert runs.run_name("dca (shared caption)", 0, paper) == "ablation-150-lr0.0005-coupled/dca_shared_caption-seed0"
    smaller_batch = replace(base, bridge_steps=600, bridge_batch_size=8)
    assert runs.run_name("none", 2, smaller_batch) == "ablation-600-lr0.005-independent-tb2-batch8/none-seed2"
    in_bf16 = replace(smaller_batch, bridge_precision="bf16")  # never mixed with the float32 runs
    assert runs.run_name("none", 2, in_bf16) == "ablation-600-lr0.005-independent-tb2-batch8-bf16/none-seed2"
    assert (
        runs.run_name("none", 2, replace(RecipeSettings(), bridge_steps=600, bridge_batch_size=8))
        == "ablation-600-lr0.005-independent-tb2-batch8-bf16/none-seed2"
    )  # named by precision, not by the default


def test_each_stages_precision_reaches_its_training_config_and_bf16_is_refused_where_it_is_not_native(
    tmp_path, monkeypatch
):
    from bridgedit.synthetic import recipe

    common = dict(
        base=tmp_path,
        dataset=tmp_path,
        cache=tmp_path,
        run_dir=tmp_path,
        steps=10,
        lr=1e-3,
        batch_size=2,
        seed=0,
        bridge={"fusion": "dca"},
        trainable={"policy": "bridges"},
    )
    assert recipe.training_config(**common)["train"]["mixed_precision"] == "no"
    assert recipe.training_config(**common, precision="bf16")["train"]["mixed_precision"] == "bf16"
    with pytest.raises(ValueError, match="bridge_precision"):
        RecipeSettings(bridge_precision="fp16")
    with pytest.raises(ValueError, match="tower_precision"):
        RecipeSettings(tower_precision="fp16")

    # each stage trains in its own precision
    configs = {}
    monkeypatch.setattr(recipe, "run_training", lambda config, run_dir: configs.setdefault(run_dir.name, config))
    (tmp_path / "init" / "model_index.json").parent.mkdir()
    (tmp_path / "init" / "model_index.json").write_text("{}")
    settings = RecipeSettings(tower_precision="bf16", bridge_precision="fp32")
    recipe.pretrain_towers(tmp_path, tmp_path / "dataset", settings)
    recipe.train_bridges(tmp_path, tmp_path / "dataset", tmp_path / "towers", settings)
    assert configs["towers"]["train"]["mixed_precision"] == "bf16"
    assert configs["bridges"]["train"]["mixed_precision"] == "no"
    configs.clear()
    settings = RecipeSettings(tower_precision="fp32")  # the bridges' default: bf16
    recipe.pretrain_towers(tmp_path, tmp_path / "dataset", settings)
    recipe.train_bridges(tmp_path, tmp_path / "dataset", tmp_path / "towers", settings)
    assert configs["towers"]["train"]["mixed_precision"] == "no"
    assert configs["bridges"]["train"]["mixed_precision"] == "bf16"

    ablation = load_ablation()
    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("sys.argv", ["ablation.py", "--precision", "bf16", "--recipe", str(tmp_path / "recipe")])
    with pytest.raises(SystemExit, match="no native bf16"):
        ablation.main()
    assert not (tmp_path / "recipe").exists()  # refused before any work


def test_the_ablation_refuses_a_recipe_folder_made_with_other_settings(tmp_path, monkeypatch):
    ablation = load_ablation()
    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: True)
    out = tmp_path / "recipe"
    out.mkdir()
    older = json.loads(json.dumps(replace(RecipeSettings(), tower_steps=1200, tower_precision="fp32").to_dict()))
    (out / "recipe.json").write_text(json.dumps(older))
    monkeypatch.setattr("sys.argv", ["ablation.py", "--recipe", str(out)])
    with pytest.raises(SystemExit, match=f"tower_steps 1200 -> {RecipeSettings().tower_steps}"):
        ablation.main()
    assert sorted(path.name for path in out.iterdir()) == ["recipe.json"]  # its towers are not trained on


def test_the_recipes_own_bridge_stage_is_reused(tmp_path):
    settings = RecipeSettings()
    assert runs.recipe_run_name(tmp_path, settings) is None  # no recipe has run here
    (tmp_path / "recipe.json").write_text(json.dumps(settings.to_dict(), indent=2))
    dca_seed0 = runs.variant_settings(settings, "dca", 0)
    assert runs.recipe_run_name(tmp_path, dca_seed0) == "bridges"
    older = {k: v for k, v in settings.to_dict().items() if k != "bridge_batch_size"}  # a recipe run before it existed
    (tmp_path / "recipe.json").write_text(json.dumps(older, indent=2))
    assert runs.recipe_run_name(tmp_path, dca_seed0) == "bridges"
    assert runs.recipe_run_name(tmp_path, replace(dca_seed0, bridge_batch_size=8)) is None
    for other in (
        runs.variant_settings(settings, "none", 0),
        runs.variant_settings(settings, "dca", 1),
        runs.variant_settings(settings, "dca (shared caption)", 0),
        replace(dca_seed0, bridge_steps=150),
        replace(dca_seed0, bridge_precision="fp32"),
    ):
        assert runs.recipe_run_name(tmp_path, other) is None


def test_next_to_real_pairs_each_generated_stream_with_its_own_clips_real_one(tmp_path, monkeypatch):
    """A model that returns the real clip itself scores in sync both ways; one that returns the next clip's
    generated stream scores at the chance level (each clip's real stream against every other clip's)."""
    from bridgedit.data.manifest import load_manifest
    from bridgedit.synthetic import make_dataset, scoring
    from bridgedit.synthetic.scoring import real_clips

    dataset = make_dataset(tmp_path / "world", clips=6, test_clips=6, seed=2, seconds=4 + 1 / 15, max_events=4)
    records = load_manifest(dataset, split="test")
    clips = list(real_clips(dataset, records))

    def fake_generate(shift, **expected_call_kwargs):
        def generate_for(pipe, records, *, captions, seed, given, given_latents, **call_kwargs):
            assert captions == "hvgc" and given in ("video", "audio") and given_latents == [given] * len(records)
            assert call_kwargs == expected_call_kwargs  # generation overrides (guidance) reach the pipeline call
            for index, record in enumerate(records):
                frames, audio, rate = clips[(index + shift) % len(records)]
                yield record, frames, audio, record["fps"], rate

        return generate_for

    monkeypatch.setattr(scoring, "real_latents", lambda pipe, dataset, records: (["video"] * 6, ["audio"] * 6))
    monkeypatch.setattr(scoring, "generate_for", fake_generate(0))
    faithful = scoring.score_next_to_real(None, dataset, records)
    monkeypatch.setattr(scoring, "generate_for", fake_generate(1, audio_guidance=1.0))
    shifted = scoring.score_next_to_real(None, dataset, records, audio_guidance=1.0)
    assert set(faithful) == set(shifted) == set(scoring.NEXT_TO_REAL)
    for direction in scoring.NEXT_TO_REAL:
        assert faithful[direction]["sync"] >= 0.9 and faithful[direction]["sync_above_chance"] > 0.5
        assert shifted[direction]["sync"] < 0.3  # another clip's stream
        assert shifted[direction]["sync_above_chance"] < 0  # its chance level now includes the true pairings


def test_next_to_real_pairs_runs_clip_by_clip_against_the_baseline():
    from bridgedit.synthetic.scoring import paired_lead

    direction = "audio for the real video"

    def run(sync, chance):
        return {direction: {"sync_per_clip": sync, "sync_chance_per_clip": chance}}

    baseline = [run([0.2, 0.3, 0.1], [0.2, 0.2, 0.2]), run([0.5, 0.5, 0.5], [0.1, 0.1, 0.1])]
    variant = [run([0.4, 0.4, 0.4], [0.2, 0.2, 0.2]), run([0.6, 0.7, 0.5], [0.1, 0.1, 0.1])]
    lead = paired_lead(variant, baseline, direction)
    differences = [0.2, 0.1, 0.3, 0.1, 0.2, 0.0]  # run i of each, clip by clip
    assert lead["pairs"] == 6 and lead["mean"] == pytest.approx(np.mean(differences))
    assert lead["standard_error"] == pytest.approx(np.std(differences, ddof=1) / np.sqrt(6))
    assert 0 < lead["p_value"] < 0.01
    assert paired_lead(baseline, variant, direction)["p_value"] > 0.99  # one-sided: "greater"
    with pytest.raises(ValueError, match="as many baseline runs"):
        paired_lead(variant, baseline[:1], direction)


def test_ablation_table_pairs_each_seed_with_the_baselines_same_seed():
    """The ablation's sync columns, for each protocol scored (both streams generated; audio for the real video at
    either guidance): mean and std over seeds, and the lead over "none" computed from the runs of equal seeds,
    whatever order the runs come in."""
    from bridgedit.synthetic.scoring import paired_lead

    ablation = load_ablation()
    direction = runs.REAL_DIRECTION
    guided, unguided = runs.REAL_PROTOCOLS
    joint = runs.PAPER_JOINT_PROTOCOL

    def statistics(sync, direction=direction):
        return {
            direction: {
                "sync_per_clip": sync,
                "sync_chance_per_clip": [0.1] * len(sync),
                "sync": float(np.mean(sync)),
                "sync_above_chance": float(np.mean(sync)) - 0.1,
            }
        }

    def run(variant, seed, sync, unguided_sync, joint_sync=(0.3, 0.3, 0.3)):
        result = {
            "variant": variant,
            "seed": seed,
            "scores": {name: 0.0 for name in ablation.SCORES + runs.GAINS},
            guided.result_key: statistics(sync),
            unguided.result_key: statistics(unguided_sync),
            joint.result_key: statistics(list(joint_sync), runs.JOINT_DIRECTION),
        }
        for protocol in (joint, guided, unguided):
            ablation.record_scores(result, protocol)
        return result

    none = [run("none", 0, [0.1, 0.2, 0.1], [0.1, 0.1, 0.1]), run("none", 1, [0.3, 0.3, 0.2], [0.2, 0.1, 0.2])]
    dca = [
        run("dca", 1, [0.5, 0.6, 0.4], [0.7, 0.8, 0.6], [0.2, 0.5, 0.3]),  # out of seed order
        run("dca", 0, [0.2, 0.4, 0.3], [0.5, 0.5, 0.6], [0.3, 0.4, 0.4]),
    ]
    table = runs.aggregate([dca[0], none[1], none[0], dca[1]])

    assert table["dca"]["seeds"] == [0, 1]
    row = table["dca"]["audio_for_real_video_sync"]
    assert row["per_seed"] == pytest.approx([0.3, 0.5]) and row["mean"] == pytest.approx(0.4)
    assert row["std"] == pytest.approx(0.1)
    assert table["dca"]["audio_for_real_video_unguided_sync"]["per_seed"] == pytest.approx([16 / 30, 0.7])
    assert table["dca"]["both_generated_sync_above_chance"]["per_seed"] == pytest.approx([11 / 30 - 0.1, 1 / 3 - 0.1])
    leads = table["dca"]["lead over none"]
    assert set(leads) == {joint.label, guided.label, unguided.label}
    assert leads[joint.label]["mean"] == pytest.approx(np.mean([0.0, 0.1, 0.1, -0.1, 0.2, 0.0]))
    expected = paired_lead(
        [dca[1][guided.result_key], dca[0][guided.result_key]],
        [none[0][guided.result_key], none[1][guided.result_key]],
        direction,
    )
    assert leads[guided.label] == expected
    assert expected["mean"] == pytest.approx(np.mean([0.1, 0.2, 0.2, 0.2, 0.3, 0.2]))
    assert leads[unguided.label]["mean"] == pytest.approx(np.mean([0.4, 0.4, 0.5, 0.5, 0.7, 0.4]))
    assert "lead over none" not in table["none"]
    # a protocol some run lacks has neither columns nor lead; runs without any (coupled noise levels) have none
    older = {k: v for k, v in dca[0].items() if k != unguided.result_key}
    older["scores"] = {k: v for k, v in older["scores"].items() if k not in unguided.score_names()}
    partial = runs.aggregate([older, dca[1], *none])["dca"]
    assert "audio_for_real_video_sync" in partial and "audio_for_real_video_unguided_sync" not in partial
    assert set(partial["lead over none"]) == {joint.label, guided.label}
    plain = {k: v for k, v in dca[0].items() if k not in (guided.result_key, unguided.result_key)}
    plain["scores"] = {name: 0.0 for name in ablation.SCORES + runs.GAINS}
    assert "audio_for_real_video_sync" not in runs.aggregate([plain])["dca"]


def test_a_run_scored_before_a_protocol_existed_gets_only_that_protocol(tmp_path, monkeypatch):
    """Resuming the ablation measures what a finished run lacks: here the joint samples' sync next to its chance level
    (at the paper's guidance, at the demo model's w_a = 2 and at w_a = 1) and the next-to-real score without audio guidance (w_a = 1); nothing is
    trained again and the scores it has are kept; the result is rewritten in RECIPE/runs and the committed copy."""
    ablation = load_ablation()
    settings = RecipeSettings()
    name = runs.run_name("dca", 0, settings)
    stored = {
        "variant": "dca",
        "seed": 0,
        "scores": {"sync": 0.3},
        "cross_modal_gain": {},
        "next_to_real": {},
        "towers_fingerprint": "f" * 64,
    }
    (tmp_path / "runs" / name).mkdir(parents=True)
    (tmp_path / "runs" / name / "scores.json").write_text(json.dumps(stored))
    checkpoint_folder(tmp_path / "runs" / name, settings.bridge_steps).mkdir()  # its trained model is here
    calls, joint_calls = [], []

    def score_next_to_real(pipe, dataset, records, *, captions, seed, directions, **overrides):
        calls.append({"captions": captions, "seed": seed, "directions": directions, **overrides})
        return {runs.REAL_DIRECTION: {"sync": 0.4, "sync_above_chance": 0.2}}

    def score_model(pipe, records, *, captions, seed, **overrides):
        joint_calls.append({"captions": captions, "seed": seed, **overrides})
        sync, above_chance = {7.0: (0.3, 0.05), 2.0: (0.4, 0.15), 1.0: (0.5, 0.25)}[overrides["audio_guidance"]]
        return [dict.fromkeys(ablation.SCORES, sync)], {"sync": sync, "sync_above_chance": above_chance}

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished run was trained or scored again")

    monkeypatch.setattr(ablation, "score_next_to_real", score_next_to_real)
    monkeypatch.setattr(ablation, "score_model", score_model)
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", lambda path: None)
    monkeypatch.setattr(ablation, "cross_modal_gain_on_cache", must_not_run)
    monkeypatch.setattr(ablation.recipe, "train_bridges", must_not_run)

    result = ablation.run_variant(
        tmp_path,
        tmp_path / "dataset",
        tmp_path / "towers",
        settings,
        "dca",
        0,
        [],
        fingerprint="f" * 64,
        commit_to=tmp_path / "committed",
        protocols=runs.PROTOCOLS,
    )  # --extra-protocols

    assert calls == [
        {
            "captions": "hvgc",
            "seed": ablation.HELD_OUT_SEED,
            "directions": (runs.REAL_DIRECTION,),
            "audio_guidance": 1.0,
        }
    ]
    assert joint_calls == [
        {"captions": "hvgc", "seed": ablation.HELD_OUT_SEED, "audio_guidance": audio_guidance}
        for audio_guidance in (7.0, 2.0, 1.0)
    ]  # at 7: the same samples as when scored
    assert runs.PAPER_AUDIO_GUIDANCE == 7.0 and runs.DEMO_AUDIO_GUIDANCE == 2.0
    assert result["scores"] == {
        **dict.fromkeys(ablation.SCORES, 0.4),  # SCORES now those of the w_a = 2 samples
        "audio_for_real_video_unguided_sync": 0.4,
        "audio_for_real_video_unguided_sync_above_chance": 0.2,
        "both_generated_sync": 0.3,
        "both_generated_sync_above_chance": 0.05,
        "both_generated_wa2_sync": 0.4,
        "both_generated_wa2_sync_above_chance": 0.15,
        "both_generated_unguided_sync": 0.5,
        "both_generated_unguided_sync_above_chance": 0.25,
    }
    assert result["scores_protocol"] == "both_generated_wa2"
    for protocol, sync in zip(runs.JOINT_PROTOCOLS, (0.3, 0.4, 0.5)):  # each joint protocol keeps its own
        assert runs.per_clip_scores(result, protocol) == [dict.fromkeys(ablation.SCORES, sync)]
    assert result["next_to_real"] == {}  # the guided protocol's result is kept as it was
    for written in (tmp_path / "runs" / name / "scores.json", tmp_path / "committed" / f"{name}.json"):
        assert json.loads(written.read_text()) == result
    assert not runs.missing_measurements(result, runs.variant_settings(settings, "dca", 0), runs.PROTOCOLS)


def test_by_default_a_run_is_scored_two_ways_and_extra_protocols_add_the_other_three(tmp_path, monkeypatch):
    """A new run is scored with DEFAULT_PROTOCOLS only (both streams generated at the demo model's w_a = 2, where its
    SCORES are measured; audio for the real video at w_a = 1); asked again with --extra-protocols, it gets the other
    three and nothing else."""
    ablation = load_ablation()
    settings = RecipeSettings()
    calls = []

    def score_model(pipe, records, *, captions, seed, **overrides):
        calls.append(("joint", overrides["audio_guidance"]))
        return [dict.fromkeys(ablation.SCORES, 0.5)], {"sync": 0.5, "sync_above_chance": 0.1}

    def score_next_to_real(pipe, dataset, records, *, captions, seed, directions, **overrides):
        calls.append(("real", overrides["audio_guidance"]))
        return {runs.REAL_DIRECTION: {"sync": 0.4, "sync_above_chance": 0.2}}

    def train_bridges(out, dataset, towers, run_settings, *, name, cache):
        calls.append(("train", name))
        checkpoint = checkpoint_folder(out / "runs" / name, run_settings.bridge_steps)
        checkpoint.mkdir(parents=True)
        return checkpoint

    gain = {stream: {"mean_relative_gain": 0.1} for stream in ("audio", "video")}
    monkeypatch.setattr(ablation, "score_model", score_model)
    monkeypatch.setattr(ablation, "score_next_to_real", score_next_to_real)
    monkeypatch.setattr(ablation, "cross_modal_gain_on_cache", lambda *args, **kwargs: gain)
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", lambda path: None)
    monkeypatch.setattr(ablation.recipe, "train_bridges", train_bridges)

    def run(protocols):
        return ablation.run_variant(
            tmp_path,
            tmp_path / "dataset",
            tmp_path / "towers",
            settings,
            "dca",
            0,
            [],
            fingerprint="f" * 64,
            commit_to=None,
            protocols=protocols,
        )

    assert runs.DEFAULT_PROTOCOLS == tuple(
        p for p in runs.PROTOCOLS if p.result_key in ("both_generated_wa2", "next_to_real_unguided")
    )
    result = run(runs.DEFAULT_PROTOCOLS)
    assert calls == [("train", runs.run_name("dca", 0, settings)), ("joint", 2.0), ("real", 1.0)]
    assert not runs.missing_measurements(result, runs.variant_settings(settings, "dca", 0))
    assert {"both_generated", "both_generated_unguided", "next_to_real"}.isdisjoint(result)
    assert result["scores_protocol"] == "both_generated_wa2" and result["scores"]["av_align"] == 0.5
    calls.clear()
    result = run(runs.PROTOCOLS)
    assert calls == [
        ("joint", 7.0),
        ("joint", 1.0),
        ("real", 7.0),
    ]  # only what the default left out; nothing trained again
    assert result["scores"]["audio_for_real_video_sync"] == 0.4
    assert result["scores"]["audio_gain_pct"] == pytest.approx(10.0)  # measured once, with the first scoring
    calls.clear()
    run(runs.PROTOCOLS)
    assert calls == []


def test_a_committed_run_whose_model_is_not_here_is_tabulated_as_it_is(tmp_path, monkeypatch, caplog):
    """A result committed from another machine (towers reproduced bit for bit) that lacks a later measurement is used
    as it is, with a warning naming what it lacks: its trained model is not here to measure, and it is not retrained."""
    ablation = load_ablation()
    settings = RecipeSettings()
    name = runs.run_name("none", 1, settings)
    committed = {
        "variant": "none",
        "seed": 1,
        "scores": {"sync": 0.3},
        "cross_modal_gain": {},
        "next_to_real": {},
        "next_to_real_unguided": {},
        "both_generated": {},
        "towers_fingerprint": "f" * 64,
    }
    (tmp_path / "committed" / name).parent.mkdir(parents=True)
    (tmp_path / "committed" / f"{name}.json").write_text(json.dumps(committed))

    def must_not_run(*args, **kwargs):
        raise AssertionError("a committed run was trained or scored")

    for function in ("score_next_to_real", "score_model", "cross_modal_gain_on_cache"):
        monkeypatch.setattr(ablation, function, must_not_run)
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", must_not_run)
    monkeypatch.setattr(ablation.recipe, "train_bridges", must_not_run)

    with caplog.at_level("WARNING"):
        result = ablation.run_variant(
            tmp_path,
            tmp_path / "dataset",
            tmp_path / "towers",
            settings,
            "none",
            1,
            [],
            fingerprint="f" * 64,
            commit_to=tmp_path / "committed",
        )

    assert result == committed
    assert "lacks both_generated_wa2, but" in caplog.text and "not here" in caplog.text  # of DEFAULT_PROTOCOLS


def test_runs_from_other_towers_are_trained_apart_from_the_recipes(tmp_path, monkeypatch):
    """--towers: a run from other towers than the recipe's never stands for the recipe's own bridge stage (the same
    settings otherwise), and has its own run folder and latent cache; a run from the recipe's towers does, even when
    its folder is tagged."""
    ablation = load_ablation()
    settings = RecipeSettings()  # the recipe's batch: DCA seed 0 is exactly its bridge stage
    (tmp_path / "recipe.json").write_text(json.dumps(settings.to_dict()))
    trained, gains = [], []

    def train_bridges(out, dataset, towers, run_settings, name, cache):
        trained.append((towers.name, name, cache))
        checkpoint = tmp_path / "runs" / name / "checkpoint"
        checkpoint.mkdir(parents=True, exist_ok=True)
        return checkpoint

    def cross_modal_gain_on_cache(checkpoint, dataset, cache, *, captions):
        gains.append(cache)
        return {stream: {"mean_relative_gain": 0.01} for stream in ("audio", "video")}

    monkeypatch.setattr(ablation.recipe, "train_bridges", train_bridges)
    monkeypatch.setattr(ablation, "cross_modal_gain_on_cache", cross_modal_gain_on_cache)
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", lambda path: None)
    monkeypatch.setattr(
        ablation,
        "score_model",
        lambda pipe, records, **kwargs: (
            [dict.fromkeys(ablation.SCORES, 0.5)],
            {"sync": 0.5, "sync_above_chance": 0.1},
        ),
    )
    monkeypatch.setattr(
        ablation,
        "score_next_to_real",
        lambda *args, **kwargs: {runs.REAL_DIRECTION: {"sync": 0.4, "sync_above_chance": 0.2}},
    )

    tag = runs.towers_tag_for("abcdef12" + "0" * 56, recipe_towers=False)
    assert tag == "-towersabcdef12" and runs.towers_tag_for("f" * 64, recipe_towers=True) == ""
    # the recipe's towers (untagged, and tagged because the committed runs of these settings came from other
    # towers) stand for the recipe's bridge stage; other towers (--towers) never do
    for towers, towers_tag, recipe_towers in (
        ("towers", "", True),
        ("towers", "-towersffffffff", True),
        ("more", tag, False),
    ):
        ablation.run_variant(
            tmp_path,
            tmp_path / "dataset",
            tmp_path / towers,
            settings,
            "dca",
            0,
            [],
            fingerprint="f" * 64,
            commit_to=None,
            towers_tag=towers_tag,
            recipe_towers=recipe_towers,
        )
    name = runs.run_name("dca", 0, settings, tag)
    assert name == runs.run_name("dca", 0, settings).replace("/", f"{tag}/", 1)
    assert trained == [
        ("towers", "bridges", tmp_path / "cache" / "bridges"),
        ("towers", "bridges", tmp_path / "cache" / "bridges"),
        ("more", name, tmp_path / "cache" / f"bridges{tag}"),
    ]
    assert gains == [tmp_path / "cache" / "bridges"] * 2 + [tmp_path / "cache" / f"bridges{tag}"]
    assert (
        runs.stored_result(tmp_path, settings, "dca", 0, fingerprint="f" * 64, commit_to=None, towers_tag=tag)[
            "variant"
        ]
        == "dca"
    )
    assert (tmp_path / "runs" / name / "scores.json").is_file()


def test_recipe_towers_from_another_machine_never_overwrite_the_committed_runs(tmp_path):
    """A recipe run whose towers are not those of the runs committed for these settings gets tagged folders."""
    folder = tmp_path / "ablation-1200-lr0.005-independent-tb2-batch8"
    ours, theirs = "a" * 64, "b" * 64
    assert runs.towers_tag_for(ours, recipe_towers=True, committed_folder=folder) == ""  # nothing committed yet
    folder.mkdir()
    (folder / "dca-seed0.json").write_text(json.dumps({"towers_fingerprint": ours}))
    assert runs.towers_tag_for(ours, recipe_towers=True, committed_folder=folder) == ""
    (folder / "none-seed0.json").write_text(json.dumps({"towers_fingerprint": theirs}))
    assert runs.towers_tag_for(ours, recipe_towers=True, committed_folder=folder) == "-towersaaaaaaaa"


def test_reference_scores_summarise_the_demo_models_samples(tmp_path, monkeypatch):
    """The references (real clips, the same through the codecs, the recipe's own model) are scored once per set of
    towers and kept in RECIPE/runs/references[TOWERS_TAG].json."""
    ablation = load_ablation()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text("{}")
    (tmp_path / "recipe.json").write_text(json.dumps({"bridge_steps": 1200}))
    clip = dict.fromkeys(ablation.SCORES, 1.0)
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", lambda path: None)
    monkeypatch.setattr(ablation, "score_references", lambda pipe, dataset, records: {"real": [clip], "codec": [clip]})
    monkeypatch.setattr(
        ablation,
        "score_model",
        lambda pipe, records, **kwargs: (
            [dict.fromkeys(ablation.SCORES, 0.5), dict.fromkeys(ablation.SCORES, 0.25)],
            {"sync": 0.375},
        ),
    )

    references = ablation.reference_scores(tmp_path, tmp_path / "dataset", tmp_path / "towers", [], "-towersabcdef12")

    assert references["demo model (dca, 1200 steps)"] == dict.fromkeys(ablation.SCORES, 0.375)
    assert references["real"] == clip
    stored = tmp_path / "runs" / "references-towersabcdef12.json"
    assert json.loads(stored.read_text()) == references


def test_workers_get_the_same_settings_and_their_share_of_the_runs(tmp_path):
    ablation = load_ablation()
    share = [("none", 0), ("dca (shared caption)", 2), ("full_attention", 1)]
    assert runs.parse_runs(runs.format_runs(share)) == share
    with pytest.raises(SystemExit, match="not VARIANT@SEED"):
        runs.parse_runs("dcaa@0")
    argv = ["--seeds", "3", "--workers", "2", "--bridge-steps", "600", "--workers=4", "--variants", "none,dca"]
    assert ablation.worker_arguments(argv, share[:2]) == [
        "--seeds",
        "3",
        "--bridge-steps",
        "600",
        "--variants",
        "none,dca",
        "--only",
        "none@0;dca (shared caption)@2",
    ]

    settings = RecipeSettings()
    committed_runs = tmp_path / "committed"
    assert runs.stored_result(tmp_path, settings, "dca", 1, fingerprint="f" * 64, commit_to=committed_runs) is None
    committed = committed_runs / f"{runs.run_name('dca', 1, settings)}.json"
    committed.parent.mkdir(parents=True)
    committed.write_text(json.dumps({"towers_fingerprint": "e" * 64}))  # from other towers: not finished here
    assert runs.stored_result(tmp_path, settings, "dca", 1, fingerprint="f" * 64, commit_to=committed_runs) is None
    local = tmp_path / "runs" / runs.run_name("dca", 1, settings) / "scores.json"
    local.parent.mkdir(parents=True)
    local.write_text(json.dumps({"scores": {}, "cross_modal_gain": {}, "next_to_real": {}}))
    stored = runs.stored_result(tmp_path, settings, "dca", 1, fingerprint="f" * 64, commit_to=None)
    assert stored is not None
    # scored before the joint chance level and the w_a = 2 and unguided protocols existed: only those are missing (runs with
    # coupled noise levels have no next-to-real protocols)
    run_settings = runs.variant_settings(settings, "dca", 1)
    coupled = replace(run_settings, bridge_timesteps="coupled")
    assert runs.missing_measurements(stored, run_settings, runs.PROTOCOLS) == [
        "both_generated",
        "both_generated_wa2",
        "both_generated_unguided",
        "next_to_real_unguided",
    ]
    assert runs.missing_measurements(stored, coupled, runs.PROTOCOLS) == [
        "both_generated",
        "both_generated_wa2",
        "both_generated_unguided",
    ]
    assert runs.missing_measurements({"scores": {}}, coupled, runs.PROTOCOLS) == [
        "cross_modal_gain",
        "both_generated",
        "both_generated_wa2",
        "both_generated_unguided",
    ]
    # by default neither the paper's nor the unguided joint protocol is asked for
    assert runs.missing_measurements(stored, run_settings) == ["both_generated_wa2", "next_to_real_unguided"]
    assert runs.missing_measurements({"scores": {}}, coupled) == ["cross_modal_gain", "both_generated_wa2"]
    # w_a = 2 scored for its sync alone, before SCORES were measured on its samples: still missing, until they are
    sync_only = {**stored, "both_generated_wa2": {}, "next_to_real_unguided": {}}
    assert runs.missing_measurements(sync_only, run_settings) == ["both_generated_wa2"]
    assert runs.missing_measurements({**sync_only, "scores_protocol": "both_generated_wa2"}, run_settings) == []


FAKE_WORKER = """
import json, os, sys, time
from pathlib import Path

folder, run = Path(sys.argv[1]), sys.argv[sys.argv.index("--only") + 1]
(folder / "running" / run).touch()
concurrent = len(list((folder / "running").iterdir()))
with open(folder / "log.jsonl", "a") as log:
    log.write(json.dumps({"run": run, "concurrent": concurrent, "threads": os.environ["OMP_NUM_THREADS"],
                          "argv": sys.argv[2:]}) + "\\n")
if run == "long@0":  # finishes only once the last short run has finished, beside it
    deadline = time.monotonic() + 60
    while not (folder / "done" / "s4@0").exists():
        if time.monotonic() > deadline:
            sys.exit(3)
        time.sleep(0.02)
(folder / "running" / run).unlink()
(folder / "done" / run).touch()
sys.exit(5 if run == "bad@0" else 0)
"""


def test_workers_take_the_next_run_as_soon_as_one_finishes_and_name_failed_runs(tmp_path):
    """--workers: one one-thread process per run, at most N at once, each started as soon as one finishes: here the
    first run can finish only after the last one has, which splitting the runs into fixed shares would never allow.
    A failed run does not stop the others and is named at the end."""
    ablation = load_ablation()
    script = tmp_path / "worker.py"
    script.write_text(FAKE_WORKER)
    for folder in ("running", "done"):
        (tmp_path / folder).mkdir()
    queue = [("long", 0), ("s1", 0), ("s2", 0), ("s3", 0), ("s4", 0)]
    ablation.run_workers(queue, 2, script=str(script), poll_seconds=0.05, argv=[str(tmp_path), "--seeds", "3"])
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sorted(entry["run"] for entry in log) == ["long@0", "s1@0", "s2@0", "s3@0", "s4@0"]
    assert all(entry["concurrent"] <= 2 and entry["threads"] == "1" for entry in log)
    assert all(entry["argv"] == ["--seeds", "3", "--only", entry["run"]] for entry in log)
    assert sorted(path.name for path in (tmp_path / "done").iterdir()) == sorted(entry["run"] for entry in log)

    with pytest.raises(SystemExit, match=r"runs failed: bad@0 \(exit code 5\); finished runs are kept"):
        ablation.run_workers([("bad", 0), ("s5", 0)], 2, script=str(script), poll_seconds=0.05, argv=[str(tmp_path)])
    assert (tmp_path / "done" / "s5@0").exists()


def test_runs_to_train_go_first_and_the_baselines_last_of_them():
    pending = [("none", 0), ("dca", 0), ("v2a", 0), ("none", 1), ("dca", 1)]
    stored = {("dca", 0): {"scores": {}}}  # trained: only a measurement is missing
    assert runs.longest_first(pending, stored) == [("v2a", 0), ("dca", 1), ("none", 0), ("none", 1), ("dca", 0)]


def test_tower_budget_never_overwrites_results_measured_from_other_towers(tmp_path, monkeypatch):
    """experiments/synthetic/tower_budget.py tags its settings when the results file of those settings is committed from other
    towers (or predates the fingerprint), as the ablation tags its run folders."""
    monkeypatch.syspath_prepend(str(ABLATION.parent))  # the script imports its sibling benchmarks
    tower_budget = load_benchmark(ABLATION.parent / "tower_budget.py")
    results, ours = tmp_path / "tower_budget-2400steps-batch16-lr0.001.json", "a" * 64
    assert not tower_budget.results_from_other_towers(results, ours)  # nothing measured yet
    results.write_text(json.dumps({"rows": {}}))  # measured before results carried the fingerprint
    assert tower_budget.results_from_other_towers(results, ours)
    results.write_text(json.dumps({"towers_fingerprint": "b" * 64}))
    assert tower_budget.results_from_other_towers(results, ours)
    results.write_text(json.dumps({"towers_fingerprint": ours}))
    assert not tower_budget.results_from_other_towers(results, ours)


def test_tower_budget_continues_from_the_previous_runs_own_last_checkpoint(monkeypatch):
    """A run's checkpoints count its own steps, so a continuation of a continuation starts from the last one's final
    checkpoint (its own step count), not from the total since the recipe's towers."""
    monkeypatch.syspath_prepend(str(ABLATION.parent))
    tower_budget = load_benchmark(ABLATION.parent / "tower_budget.py")
    assert tower_budget.own_steps("2400steps-batch16-lr0.001") == 2400
    assert tower_budget.own_steps("2400steps-batch16-lr0.001-bf16+1200steps-batch16-lr0.001-bf16") == 1200
    assert tower_budget.own_steps("2400steps-batch16-lr0.001+600steps-batch8-lr0.0005-towersabcdef12") == 600
    with pytest.raises(SystemExit, match="not this script's settings"):
        tower_budget.own_steps("towers")


def test_tower_budget_from_init_trains_the_tower_stage_again_from_the_random_towers(tmp_path, monkeypatch):
    import argparse

    monkeypatch.syspath_prepend(str(ABLATION.parent))
    tower_budget = load_benchmark(ABLATION.parent / "tower_budget.py")
    monkeypatch.setattr(tower_budget, "towers_fingerprint", lambda folder: f"{folder.name:0<64}")
    monkeypatch.setattr(tower_budget, "RESULTS", tmp_path / "results")
    recipe, towers = tmp_path / "recipe", tmp_path / "recipe" / "runs" / "towers" / "checkpoint-001200"

    def args(**overrides):
        return argparse.Namespace(
            **{
                "steps": 3600,
                "batch": 16,
                "lr": 1e-3,
                "precision": "bf16",
                "after": None,
                "from_init": False,
                **overrides,
            }
        )

    continued = tower_budget.plan_run(args(), recipe, towers)
    assert (continued.base, continued.settings) == (towers, "3600steps-batch16-lr0.001-bf16")
    assert continued.run_dir == recipe / "runs" / "towers-more-3600steps-batch16-lr0.001-bf16"
    assert continued.fingerprint.startswith("checkpoint-001200")
    again = tower_budget.plan_run(args(from_init=True), recipe, towers)
    assert (again.base, again.settings) == (recipe / "init", "init-3600steps-batch16-lr0.001-bf16")
    assert again.run_dir == recipe / "runs" / "towers-init-3600steps-batch16-lr0.001-bf16"
    assert again.fingerprint.startswith("init") and (again.steps_before, again.rows_before) == (0, {})
    with pytest.raises(SystemExit, match="choose one"):
        tower_budget.plan_run(args(from_init=True, after="2400steps-batch16-lr0.001"), recipe, towers)


def test_lead_across_towers_takes_the_seed_as_the_unit(tmp_path, monkeypatch):
    """experiments/synthetic/lead_across_towers.py: per seed, DCA's mean per-clip lead (sync above chance) over "none"'s run of
    the same seed; seeds without both tower_runs, or a protocol one of the pair lacks, are left out; the one-sided tests
    over seeds are scipy's, and agree with the t statistic written out."""
    from scipy.stats import t as student_t

    monkeypatch.syspath_prepend(str(ABLATION.parent))
    across = load_benchmark(ABLATION.parent / "lead_across_towers.py")
    joint, unguided = across.PROTOCOLS[0], across.PROTOCOLS[1]

    def write(variant, seed, sync, chance, with_unguided=True):
        statistics = {joint.direction: {"sync_per_clip": sync, "sync_chance_per_clip": chance}}
        result = {"variant": variant, "seed": seed, joint.result_key: statistics}
        if with_unguided:
            result[unguided.result_key] = statistics
        (tmp_path / f"{variant}-seed{seed}.json").write_text(json.dumps(result))

    write("none", 0, [0.2, 0.4], [0.1, 0.1])
    write("none", 1, [0.3, 0.3], [0.2, 0.1])
    write("none", 2, [0.5, 0.5], [0.2, 0.2], with_unguided=False)
    write("dca", 2, [0.6, 0.8], [0.2, 0.2])
    write("dca", 1, [0.2, 0.6], [0.1, 0.1])
    write("dca", 0, [0.6, 0.4], [0.1, 0.2])
    write("dca", 3, [0.9, 0.9], [0.1, 0.1])  # no baseline run of this seed
    write("a2v", 0, [0.9, 0.9], [0.1, 0.1])  # neither variant compared
    tower_runs = across.load_runs(tmp_path)
    leads = across.per_seed_leads(tower_runs, joint.result_key, joint.direction)
    # seed 0: dca (0.5, 0.2) - none (0.1, 0.3); seed 1: (0.1, 0.5) - (0.1, 0.2); seed 2: (0.4, 0.6) - (0.3, 0.3)
    assert leads == pytest.approx({0: 0.15, 1: 0.15, 2: 0.2})
    assert across.per_seed_leads(tower_runs, unguided.result_key, unguided.direction) == pytest.approx(
        {0: 0.15, 1: 0.15}
    )

    summary = across.across_seeds([0.15, 0.15, 0.2])
    values = np.array([0.15, 0.15, 0.2])
    t = values.mean() / (values.std(ddof=1) / np.sqrt(3))
    assert summary["t_test_p"] == pytest.approx(student_t.sf(t, df=2))
    assert summary["wilcoxon_p"] == pytest.approx(1 / 8)  # exact: all 3 signs positive, 1 of 2^3 sign patterns
    assert summary["seeds"] == 3 and summary["seeds_with_dca_above"] == 3 and summary["mean"] == pytest.approx(0.5 / 3)
    assert across.across_seeds([-0.1, 0.05, -0.2])["t_test_p"] > 0.5  # a lead below zero is not significant
    assert "t_test_p" not in across.across_seeds([0.1])  # one seed: no test


def test_every_tower_set_of_lead_across_towers_is_committed(tmp_path, monkeypatch):
    """The sets the script names are the committed run folders, each with paired none/DCA seeds."""
    monkeypatch.syspath_prepend(str(ABLATION.parent))
    across = load_benchmark(ABLATION.parent / "lead_across_towers.py")
    for tower_set in across.TOWER_SETS:
        tower_runs = across.load_runs(across.RUNS / tower_set.folder)
        assert across.per_seed_leads(tower_runs, across.PROTOCOLS[0].result_key, across.PROTOCOLS[0].direction), (
            tower_set
        )


def test_ablation_table_has_dcas_lead_over_every_other_variant_on_the_seeds_both_have():
    """Table 9's ordering and Table 3's captions compare DCA with each other kind: the table pairs DCA's run of seed k
    with the other kind's run of seed k, clip by clip, on the seeds both have."""
    from bridgedit.synthetic.scoring import paired_lead

    ablation = load_ablation()
    joint = runs.PAPER_JOINT_PROTOCOL

    def run(variant, seed, sync):
        statistics = {
            joint.direction: {
                "sync_per_clip": sync,
                "sync_chance_per_clip": [0.1] * len(sync),
                "sync": float(np.mean(sync)),
                "sync_above_chance": float(np.mean(sync)) - 0.1,
            }
        }
        result = {
            "variant": variant,
            "seed": seed,
            "scores": {name: 0.0 for name in ablation.SCORES + runs.GAINS},
            joint.result_key: statistics,
        }
        ablation.record_scores(result, joint)
        return result

    dca = [run("dca", 0, [0.5, 0.4, 0.6]), run("dca", 1, [0.3, 0.3, 0.4]), run("dca", 2, [0.9, 0.9, 0.9])]
    none = [run("none", 0, [0.2, 0.2, 0.3]), run("none", 1, [0.3, 0.1, 0.2]), run("none", 2, [0.1, 0.2, 0.1])]
    v2a = [run("v2a", 1, [0.4, 0.1, 0.2])]  # only seed 1: DCA's seed 1 against it, nothing else
    shared = [run(runs.SHARED, 2, [0.1, 0.1, 0.1]), run(runs.SHARED, 0, [0.6, 0.6, 0.6])]
    table = runs.aggregate([*dca, *none, *v2a, *shared])

    lead_name = runs.PROPOSED_LEAD
    assert lead_name not in table["dca"]
    v2a_lead = table["v2a"][lead_name][joint.label]
    assert v2a_lead["pairs"] == 3 and v2a_lead["mean"] == pytest.approx(np.mean([-0.1, 0.2, 0.2]))
    assert v2a_lead == paired_lead([dca[1][joint.result_key]], [v2a[0][joint.result_key]], joint.direction)
    shared_lead = table[runs.SHARED][lead_name][joint.label]
    assert shared_lead["pairs"] == 6  # seeds 0 and 2, each DCA run against the shared caption's run of its seed
    assert shared_lead["mean"] == pytest.approx(np.mean([-0.1, -0.2, 0.0, 0.8, 0.8, 0.8]))
    # against "none", DCA's lead is the same comparison as the "lead over none" of DCA's own row
    assert table["none"][lead_name][joint.label] == table["dca"]["lead over none"][joint.label]
    # a kind with no seed in common with DCA's runs gets no lead
    alone = runs.aggregate([dca[0], run("a2v", 5, [0.2, 0.2, 0.2])])
    assert lead_name not in alone["a2v"]


def test_guidance_scan_scores_each_run_once_per_scale_and_pairs_dca_with_nones_same_seed(tmp_path, monkeypatch):
    """experiments/synthetic/guidance_scan.py: each run's held-out samples are generated at every new audio guidance scale once
    (resumed, never again), the model's own scale is read from the run's result, and DCA's lead is taken clip by clip
    against "none"'s run of the same seed."""
    monkeypatch.syspath_prepend(str(ABLATION.parent))
    scan = load_benchmark(ABLATION.parent / "guidance_scan.py")
    runs_folder = tmp_path / "runs_folder" / "ablation-x"
    sync_of = {("none", 0): [0.2, 0.4], ("none", 1): [0.3, 0.3], ("dca", 0): [0.5, 0.4], ("dca", 1): [0.2, 0.5]}

    def statistics(sync, chance=0.1):
        return {
            "sync": float(np.mean(sync)),
            "sync_per_clip": sync,
            "sync_chance": chance,
            "sync_chance_per_clip": [chance] * len(sync),
            "sync_above_chance": float(np.mean(sync)) - chance,
            "video_events": 2.0,
            "audio_events": 3.0,
        }

    def per_clip(sync):
        return [{"sync": s, "av_align": 0.1, "colour": 1.0, "shape": 1.0, "material": 0.5} for s in sync]

    for (variant, seed), sync in sync_of.items():
        folder = runs_folder / f"{variant}-seed{seed}"
        (folder / "checkpoint-000004").mkdir(parents=True)
        (folder / "latest").write_text("checkpoint-000004")
        (folder / "scores.json").write_text(
            json.dumps({"per_clip": per_clip(sync), "both_generated": {scan.JOINT_DIRECTION: statistics(sync)}})
        )
    calls = []

    def score_model(pipe, records, *, captions, seed, audio_guidance):
        calls.append((pipe, captions, seed, audio_guidance))
        sync = [s / audio_guidance for s in sync_of[pipe]]  # each run's own samples, fainter at larger scales
        return per_clip(sync), statistics(sync)

    monkeypatch.setattr(scan, "score_model", score_model)
    monkeypatch.setattr(
        scan.BridgeDiTPipeline,
        "from_pretrained",
        lambda path: (path.parent.name.split("-seed")[0], int(path.parent.name.split("-seed")[1])),
    )
    for _ in range(2):  # the second pass finds every scale scored
        for variant, seed in sync_of:
            scan.scan_run(runs_folder, variant, seed, [1.0, 2.0], [])
    assert sorted(calls) == sorted((run, "hvgc", scan.HELD_OUT_SEED, scale) for run in sync_of for scale in (1.0, 2.0))

    table = scan.tabulate(runs_folder, [0, 1], [2.0, scan.PAPER_AUDIO_GUIDANCE])
    assert table["2"]["lead_per_seed"]["per_seed"] == pytest.approx({0: 0.075, 1: 0.025})  # halved syncs
    assert table["7"]["lead_per_seed"]["per_seed"] == pytest.approx({0: 0.15, 1: 0.05})  # the runs_folder' own scores
    assert table["7"]["lead_per_clip"]["mean"] == pytest.approx(np.mean([0.3, 0.0, -0.1, 0.2]))
    assert table["7"]["lead_per_seed"]["seeds_with_dca_above"] == 2
    assert table["2"]["dca"]["sync"]["mean"] == pytest.approx(np.mean([0.45, 0.35]) / 2)
    assert table["2"]["none"]["material"]["mean"] == 0.5
    with pytest.raises(KeyError):  # a scale never scanned is not made up
        scan.tabulate(runs_folder, [0, 1], [4.0])


def test_reference_scores_add_only_what_the_kept_file_lacks(tmp_path, monkeypatch):
    """RECIPE/runs/references.json scored before the demo model's w_a = 2 existed keeps what it has (the real clips, the
    codec, the demo model at the paper's guidance) and gets only the demo model at w_a = 2, generated at that scale."""
    ablation = load_ablation()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model_index.json").write_text("{}")
    (tmp_path / "recipe.json").write_text(json.dumps({"bridge_steps": 1200}))
    kept = {"real": {"sync": 0.9}, "codec": {"sync": 0.8}, "demo model (dca, 1200 steps)": {"sync": 0.3}}
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "references.json").write_text(json.dumps(kept))
    calls = []

    def score_model(pipe, records, *, seed, **overrides):
        calls.append(overrides)
        return [{"sync": 0.5}], {}

    def must_not_run(*args, **kwargs):
        raise AssertionError("a kept reference was scored again")

    monkeypatch.setattr(ablation, "score_model", score_model)
    monkeypatch.setattr(ablation, "score_references", must_not_run)
    monkeypatch.setattr(ablation, "summarize_scores", lambda per_clip: {"sync": per_clip[0]["sync"]})
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", lambda path: None)

    references = ablation.reference_scores(tmp_path, tmp_path / "dataset", tmp_path / "towers", [])

    assert calls == [{"audio_guidance": 2.0}]
    assert references == {**kept, "demo model (dca, 1200 steps), w_a = 2": {"sync": 0.5}}
    assert json.loads((tmp_path / "runs" / "references.json").read_text()) == references
    assert ablation.reference_scores(tmp_path, tmp_path / "dataset", tmp_path / "towers", []) == references
    assert len(calls) == 1  # complete: nothing scored again


def test_a_run_scored_at_the_papers_guidance_gets_its_scores_from_the_demo_models_samples(tmp_path, monkeypatch):
    """A run scored before SCORES moved to the demo model's guidance (its SCORES and per-clip scores from the w_a = 7
    samples, its w_a = 2 samples scored for sync alone) is scored once more at w_a = 2, in full: its SCORES become
    those samples', the w_a = 7 per-clip scores stay under their protocol, nothing is trained; a second pass does
    nothing."""
    ablation = load_ablation()
    settings = RecipeSettings()
    name = runs.run_name("v2a", 1, settings)
    paper_per_clip = [dict.fromkeys(ablation.SCORES, 0.1)]
    stored = {
        "variant": "v2a",
        "seed": 1,
        "scores": {**dict.fromkeys(ablation.SCORES, 0.1), "audio_gain_pct": 3.0},
        "per_clip": paper_per_clip,
        "cross_modal_gain": {},
        "next_to_real_unguided": {},
        "both_generated": {runs.JOINT_DIRECTION: {"sync": 0.1, "sync_above_chance": 0.0}},
        "both_generated_wa2": {runs.JOINT_DIRECTION: {"sync": 0.2, "sync_above_chance": 0.05}},
        "towers_fingerprint": "f" * 64,
    }
    (tmp_path / "runs" / name).mkdir(parents=True)
    (tmp_path / "runs" / name / "scores.json").write_text(json.dumps(stored))
    checkpoint_folder(tmp_path / "runs" / name, settings.bridge_steps).mkdir()
    calls = []

    def score_model(pipe, records, *, captions, seed, **overrides):
        calls.append(overrides["audio_guidance"])
        return [dict.fromkeys(ablation.SCORES, 0.2)], {"sync": 0.2, "sync_above_chance": 0.05}

    def must_not_run(*args, **kwargs):
        raise AssertionError("trained or measured again")

    monkeypatch.setattr(ablation, "score_model", score_model)
    for function in ("score_next_to_real", "cross_modal_gain_on_cache"):
        monkeypatch.setattr(ablation, function, must_not_run)
    monkeypatch.setattr(ablation.recipe, "train_bridges", must_not_run)
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", lambda path: None)

    def run():
        return ablation.run_variant(
            tmp_path,
            tmp_path / "dataset",
            tmp_path / "towers",
            settings,
            "v2a",
            1,
            [],
            fingerprint="f" * 64,
            commit_to=None,
        )

    result = run()
    assert calls == [2.0]
    assert {name: result["scores"][name] for name in ablation.SCORES} == dict.fromkeys(ablation.SCORES, 0.2)
    assert result["scores"]["audio_gain_pct"] == 3.0 and result["scores"]["both_generated_wa2_sync"] == 0.2
    assert runs.scores_protocol(result) == "both_generated_wa2" and "per_clip" not in result
    assert runs.per_clip_scores(result, runs.PAPER_JOINT_PROTOCOL) == paper_per_clip
    assert runs.per_clip_scores(result, runs.SCORES_PROTOCOL) == [dict.fromkeys(ablation.SCORES, 0.2)]
    assert json.loads((tmp_path / "runs" / name / "scores.json").read_text()) == result
    run()
    assert calls == [2.0]


def test_a_run_interrupted_while_scored_is_not_trained_again(tmp_path, monkeypatch):
    """A run's result is kept as soon as it is trained and after each measurement: scoring that fails midway leaves
    the training (and its time) and what was measured; the next pass measures only the rest."""
    ablation = load_ablation()
    settings = RecipeSettings()
    trained, scored = [], []

    def train_bridges(out, dataset, towers, run_settings, *, name, cache):
        trained.append(name)
        checkpoint = checkpoint_folder(out / "runs" / name, run_settings.bridge_steps)
        checkpoint.mkdir(parents=True)
        return checkpoint

    def score_model(pipe, records, *, captions, seed, **overrides):
        scored.append("joint")
        return [dict.fromkeys(ablation.SCORES, 0.5)], {"sync": 0.5, "sync_above_chance": 0.1}

    def score_next_to_real_fails(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ablation.recipe, "train_bridges", train_bridges)
    monkeypatch.setattr(ablation, "score_model", score_model)
    monkeypatch.setattr(ablation, "score_next_to_real", score_next_to_real_fails)
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", lambda path: None)

    def run():
        return ablation.run_variant(
            tmp_path,
            tmp_path / "dataset",
            tmp_path / "towers",
            settings,
            "none",
            0,
            [],
            fingerprint="f" * 64,
            commit_to=None,
        )

    with pytest.raises(KeyboardInterrupt):
        run()
    kept = runs.stored_result(tmp_path, settings, "none", 0, fingerprint="f" * 64, commit_to=None)
    assert "train_seconds" in kept and kept["scores"]["sync"] == 0.5 and "next_to_real_unguided" not in kept
    monkeypatch.setattr(
        ablation,
        "score_next_to_real",
        lambda *args, **kwargs: {runs.REAL_DIRECTION: {"sync": 0.4, "sync_above_chance": 0.2}},
    )
    monkeypatch.setattr(
        ablation,
        "cross_modal_gain_on_cache",
        lambda *args, **kwargs: {stream: {"mean_relative_gain": 0.0} for stream in ("audio", "video")},
    )
    result = run()
    assert trained == [runs.run_name("none", 0, settings)] and scored == ["joint"]
    assert (
        result["train_seconds"] == kept["train_seconds"]
        and result["scores"]["audio_for_real_video_unguided_sync"] == 0.4
    )


def test_the_table_never_averages_scores_measured_on_different_samples(caplog):
    """Runs whose SCORES come from different protocols' samples (some scored at the paper's guidance before SCORES
    moved to the demo model's) leave SCORES out of the table; the sync protocols all runs have stay."""
    ablation = load_ablation()
    statistics = {
        runs.JOINT_DIRECTION: {
            "sync_per_clip": [0.5],
            "sync_chance_per_clip": [0.1],
            "sync": 0.5,
            "sync_above_chance": 0.4,
        }
    }

    def run(seed, scored_on=None):
        result = {
            "variant": "dca",
            "seed": seed,
            "scores": dict.fromkeys(ablation.SCORES + runs.GAINS, 0.5),
            "both_generated_wa2": statistics,
        }
        ablation.record_scores(result, runs.SCORES_PROTOCOL)
        return result if scored_on is None else {**result, "scores_protocol": scored_on}

    same = runs.aggregate([run(0, "both_generated_wa2"), run(1, "both_generated_wa2")])["dca"]
    assert "av_align" in same and "both_generated_wa2_sync" in same
    legacy = {**run(0), "per_clip": []}  # scored before: its SCORES are the paper's samples'
    assert runs.scores_protocol(legacy) == "both_generated" and runs.scores_protocol(run(0)) is None
    trained_only = {"variant": "dca", "seed": 2, "scores": {}}  # kept after training, not yet scored
    with caplog.at_level("WARNING"):
        partial = runs.aggregate([run(0, "both_generated_wa2"), trained_only])["dca"]
    assert "different samples" not in caplog.text and "av_align" not in partial  # not every run has it yet
    with caplog.at_level("WARNING"):
        mixed = runs.aggregate([legacy, run(1, "both_generated_wa2")])["dca"]
    assert not set(ablation.SCORES) & set(mixed) and "both_generated_wa2_sync" in mixed and "audio_gain_pct" in mixed
    assert "different samples" in caplog.text


def test_guidance_scan_reads_the_samples_the_ablation_scored_in_full(tmp_path, monkeypatch):
    """A run the ablation scored at w_a = 2 with its per-clip scores is read from its result at that scale; one whose
    w_a = 2 samples were scored for sync alone is not (the scan generates them)."""
    monkeypatch.syspath_prepend(str(ABLATION.parent))
    scan = load_benchmark(ABLATION.parent / "guidance_scan.py")
    per_clip = [{"sync": 0.3, "av_align": 0.2, "colour": 1.0, "shape": 0.0, "material": 1.0}]
    statistics = {"sync": 0.3}
    (tmp_path / "scores.json").write_text(
        json.dumps(
            {
                "both_generated_wa2": {scan.JOINT_DIRECTION: statistics, "per_clip": per_clip},
                "scores_protocol": "both_generated_wa2",
            }
        )
    )
    assert scan.scored_by_ablation(tmp_path, 2.0) == {"per_clip": per_clip, scan.JOINT_DIRECTION: statistics}
    assert scan.scored_by_ablation(tmp_path, 7.0) is None
    (tmp_path / "scores.json").write_text(
        json.dumps({"both_generated_wa2": {scan.JOINT_DIRECTION: statistics}, "per_clip": per_clip})
    )  # the w_a = 7 samples' per-clip scores
    assert scan.scored_by_ablation(tmp_path, 2.0) is None


def test_ablation_time_hands_runs_to_the_first_free_worker_and_charges_each_its_recorded_seconds(monkeypatch):
    """experiments/synthetic/ablation_time.py: the table's time is when the last run finishes, the runs handed in the ablation's
    order to the first free worker; each run costs its training, the scoring of the protocols asked for (the paper's
    joint samples timed as "score_seconds" in runs scored before each protocol had its own time) and the overhead."""
    monkeypatch.syspath_prepend(str(ABLATION.parent))
    timing = load_benchmark(ABLATION.parent / "ablation_time.py")
    assert timing.makespan([4, 1, 1, 1, 1], 2) == 4  # the short runs fill the second worker while the long one runs
    assert timing.makespan([1, 1, 1, 1, 4], 2) == 6  # a long run last leaves one worker idle at the end
    legacy = {
        "variant": "dca",
        "seed": 0,
        "train_seconds": 100.0,
        "score_seconds": 30.0,
        "both_generated_wa2_seconds": 20.0,
    }
    assert timing.protocol_seconds(legacy, "both_generated") == 30.0
    assert timing.protocol_seconds(legacy, "both_generated_wa2") == 20.0
    with pytest.raises(KeyError, match="no time recorded for next_to_real"):
        timing.protocol_seconds(legacy, "next_to_real")
    rescored = {**legacy, "scores_protocol": "both_generated_wa2"}  # its score_seconds are still the paper's samples'
    assert timing.protocol_seconds(rescored, "both_generated") == 30.0
    results = {("none", 0): {**legacy, "variant": "none", "train_seconds": 50.0}, ("dca", 0): legacy}
    # "none" last: the other run first, each charged training + the w_a = 2 scoring + 5 s
    assert timing.run_costs(results, ["both_generated_wa2"], 5.0) == [125.0, 75.0]
