"""The demo model's pieces: the patch video codec, codec training, the recipe end to end, world scoring."""

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from bridgedit import PatchVideoCodec, tiny
from bridgedit.config import CodecStrides
from bridgedit.synthetic import WorldSettings, make_dataset, render_clip
from bridgedit.synthetic.codecs import (
    foreground,
    load_clips,
    multi_resolution_stft_loss,
    set_latent_statistics,
    train_audio_codec,
    train_video_codec,
)
from bridgedit.synthetic.world import draw_scene

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("world") / "data", clips=6, seed=1)


def test_patch_codec_speaks_the_wan_vae_interface(tmp_path):
    from diffusers import WanPipeline

    codec = PatchVideoCodec(patch_size=8, z_dim=16, hidden_dim=32)
    x = torch.rand(2, 3, 5, 16, 24) * 2 - 1
    latents = codec.encode(x).latent_dist.mode()
    assert latents.shape == (2, 16, 5, 2, 3)  # (B, z, F, H / 8, W / 8): no temporal compression
    assert torch.equal(codec.encode(x).latent_dist.sample(), latents)  # deterministic posterior
    video = codec.decode(latents, return_dict=False)[0]
    assert video.shape == x.shape and video.abs().max() <= 1
    # patches are coded independently: changing one patch changes only its own latent
    changed = x.clone()
    changed[0, :, 2, :8, :8] = 0.3
    difference = (codec.encode(changed).latent_dist.mode() - latents).abs().sum(dim=1)  # (B, F, h, w)
    assert difference[0, 2, 0, 0] > 0 and difference.sum() == difference[0, 2, 0, 0]
    with pytest.raises(ValueError, match="whole number of 8x8 patches"):
        codec.encode(torch.zeros(1, 3, 1, 12, 16))

    tokenizer = tiny.tokenizer()
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny.umt5_encoder(len(tokenizer)),
        vae=codec,
        transformer=tiny.wan_transformer(),
        scheduler=tiny.wan_scheduler(),
    )
    assert (pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial) == (1, 8)
    strides = CodecStrides.from_components(
        wan_vae_config=codec.config,
        wan_transformer_config=tiny.WAN_TRANSFORMER_CONFIG,
        oobleck_config=tiny.OOBLECK_VAE_CONFIG,
    )
    assert (strides.video_temporal, strides.video_spatial) == (1, 8)
    pipe.save_pretrained(tmp_path / "wan")
    loaded = WanPipeline.from_pretrained(tmp_path / "wan").vae
    assert isinstance(loaded, PatchVideoCodec)
    assert torch.equal(loaded.encode(x).latent_dist.mode(), latents)


def test_a_wider_decoder_kernel_lets_each_patch_read_its_neighbours(tmp_path):
    """decoder_kernel 1 (the first demo's codec) decodes each patch from its own latent alone; 3 from the 3 x 3 latents
    around it, so a ball across a patch border is drawn from both sides. Encoding stays per patch either way."""
    torch.manual_seed(0)
    latents = torch.randn(1, 4, 2, 3, 3)  # (B, z, F, h, w)
    changed = latents.clone()
    changed[0, :, 1, 1, 2] += 1.0  # one latent: frame 1, row 1, column 2
    for kernel, reaches in ((1, {(1, 2)}), (3, {(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)})):
        codec = PatchVideoCodec(patch_size=4, z_dim=4, hidden_dim=8, decoder_kernel=kernel)
        with torch.no_grad():
            moved = (codec.decode_patches(changed) - codec.decode_patches(latents)).abs()  # (B, 3, F, 12, 12)
        per_patch = moved[0].sum(dim=0).reshape(2, 3, 4, 3, 4).sum(dim=(2, 4))  # (F, h, w)
        assert per_patch[0].sum() == 0  # frames are decoded apart
        assert {tuple(ij) for ij in torch.nonzero(per_patch[1]).tolist()} == reaches, kernel
        codec.save_pretrained(tmp_path / f"k{kernel}")
        loaded = PatchVideoCodec.from_pretrained(tmp_path / f"k{kernel}")
        assert torch.equal(loaded.decode_patches(latents), codec.decode_patches(latents))
    with pytest.raises(ValueError, match="decoder_kernel"):
        PatchVideoCodec(decoder_kernel=2)


def test_recipe_settings_of_a_model_made_before_the_world_was_a_setting_mean_the_first_demos(tmp_path):
    from bridgedit.config import ConfigError
    from bridgedit.synthetic.recipe import FIRST_VIDEO_CODEC, RecipeSettings

    recorded = RecipeSettings().to_dict()
    del recorded["world"], recorded["video_codec"]
    (tmp_path / "recipe.json").write_text(json.dumps(recorded))
    first = RecipeSettings.of_model(tmp_path)
    assert first.world_settings == WorldSettings() and first.video_codec == FIRST_VIDEO_CODEC
    size = {key: first.generation_defaults[key] for key in ("height", "width", "num_frames", "fps")}
    assert size == {"height": 64, "width": 64, "num_frames": 17, "fps": 15.0}
    assert RecipeSettings().generation_defaults["num_frames"] == 25  # the demo's world: 2.08 s at 12 fps
    with pytest.raises(ConfigError, match="world has no setting colour"):
        RecipeSettings(world={"colour": "red"})


def test_foreground_marks_the_object():
    settings = WorldSettings()
    rng = np.random.default_rng(3)
    scene = draw_scene(rng, settings)
    frames, _ = render_clip(scene, settings, rng)
    x = torch.from_numpy(frames[None]).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    mask = foreground(x)[0, 0]  # (F, H, W)
    floor = int(0.85 * settings.height)
    objects = mask[:, :floor]  # above the floor line only the object differs from the background
    expected = np.abs(frames[:, :floor].astype(int) - frames[:, :1, :1].astype(int)).sum(-1) > 0
    assert torch.equal(objects.bool(), torch.from_numpy(expected))


def test_video_codec_training_learns_and_normalises(world):
    frames, _, _ = load_clips(world)
    torch.manual_seed(0)
    codec = PatchVideoCodec(hidden_dim=64)
    losses = train_video_codec(codec, frames, steps=60, frames_per_batch=8)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    set_latent_statistics(codec, frames)
    with torch.no_grad():
        latents = codec.encode(torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 127.5 - 1).latent_dist.mode()
    mean = torch.tensor(codec.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(codec.config.latents_std).view(1, -1, 1, 1, 1)
    normalised = ((latents - mean) / std).transpose(0, 1).reshape(16, -1)
    torch.testing.assert_close(normalised.mean(1), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(normalised.std(1), torch.ones(16), atol=1e-3, rtol=0)


def test_stft_loss_is_zero_only_for_the_same_sound():
    t = torch.arange(2048) / 4000
    tone = torch.sin(2 * torch.pi * 500 * t)[None]
    assert multi_resolution_stft_loss(tone, tone).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.sin(2 * torch.pi * 900 * t)[None]
    quieter = 0.5 * tone
    assert multi_resolution_stft_loss(other, tone) > multi_resolution_stft_loss(quieter, tone) > 0.1


def test_audio_codec_training_learns(world):
    _, audio, rate = load_clips(world)
    torch.manual_seed(0)
    codec = tiny.oobleck_vae(sampling_rate=rate)
    losses = train_audio_codec(codec, audio, steps=40, batch_size=4, window_samples=1024)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_recipe_stage_timings_add_up_over_resumes():
    from bridgedit.synthetic.recipe import _timed

    timings = {}
    assert _timed(timings, "towers_s", False, lambda: "trained") == "trained"
    first = timings["towers_s"]
    _timed(timings, "towers_s", True, lambda: time.sleep(0.01))  # done before this call: its time is kept
    assert timings["towers_s"] == first
    _timed(timings, "towers_s", False, lambda: time.sleep(0.01))  # resumed: the parts add up
    assert timings["towers_s"] >= first + 0.01


def test_a_recipe_resumed_in_another_environment_keeps_the_first_and_names_what_differs(tmp_path, monkeypatch, caplog):
    from bridgedit.synthetic import recipe

    first = recipe.record_environment(tmp_path)
    assert json.loads((tmp_path / "environment.json").read_text()) == first
    assert set(first["packages"]) == set(recipe.ENVIRONMENT_PACKAGES) and first["threads"] == torch.get_num_threads()
    with caplog.at_level("WARNING"):
        assert recipe.record_environment(tmp_path) == first
    assert not caplog.records  # the same environment: nothing to say
    other = {**first, "threads": first["threads"] + 1, "packages": {**first["packages"], "av": "0.1"}}
    monkeypatch.setattr(recipe, "environment", lambda: other)
    with caplog.at_level("WARNING"):
        assert recipe.record_environment(tmp_path) == first
    assert f"av {first['packages']['av']} -> 0.1" in caplog.text
    assert f"threads {first['threads']} -> {first['threads'] + 1}" in caplog.text
    assert json.loads((tmp_path / "environment.json").read_text()) == first  # the run's first environment is kept


def test_recipe_precision_from_the_command_line_reaches_both_stages_and_bf16_falls_back_or_is_refused_where_it_is_not_native(
    tmp_path, monkeypatch, capsys
):
    from bridgedit.cli.main import main
    from bridgedit.synthetic import recipe
    from bridgedit.training import trainer

    ran = []
    monkeypatch.setattr(recipe, "run_recipe", lambda out, settings: ran.append(settings) or Path(out) / "model")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: True)
    assert main(["synthetic", "recipe", "--out", str(tmp_path / "default")]) == 0
    assert (ran[-1].tower_precision, ran[-1].bridge_precision) == ("bf16", "bf16")  # the recipe's default
    assert main(["synthetic", "recipe", "--out", str(tmp_path / "fp32"), "--precision", "fp32"]) == 0
    assert (ran[-1].tower_precision, ran[-1].bridge_precision) == ("fp32", "fp32")
    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: False)
    capsys.readouterr()
    assert main(["synthetic", "recipe", "--out", str(tmp_path / "fallback")]) == 0  # by default: float32, said so
    assert (ran[-1].tower_precision, ran[-1].bridge_precision) == ("fp32", "fp32")
    assert "training in float32, not the recipe's bf16" in capsys.readouterr().err
    assert main(["synthetic", "recipe", "--out", str(tmp_path / "refused"), "--precision", "bf16"]) != 0
    assert len(ran) == 3  # asked for explicitly: refused before any work

    # --like MODEL: the settings its recipe.json records (a model made before the world was a setting: the first
    # demo's world and codec), its seed unless --seed is given, the precision as above
    first = {**recipe.RecipeSettings(seed=7).to_dict(), "train_clips": 96}
    del first["world"], first["video_codec"]
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "recipe.json").write_text(json.dumps(first))
    assert main(["synthetic", "recipe", "--out", str(tmp_path / "like"), "--like", str(tmp_path / "first")]) == 0
    assert (ran[-1].seed, ran[-1].train_clips, ran[-1].world, ran[-1].tower_precision) == (7, 96, {}, "fp32")
    assert ran[-1].video_codec == recipe.FIRST_VIDEO_CODEC
    assert (
        main(["synthetic", "recipe", "--out", str(tmp_path / "l2"), "--like", str(tmp_path / "first"), "--seed", "3"])
        == 0
    )
    assert ran[-1].seed == 3
    assert main(["synthetic", "recipe", "--out", str(tmp_path / "l3"), "--like", str(tmp_path)]) != 0  # no recipe.json


@pytest.mark.parametrize("finished", [False, True], ids=["unfinished", "finished"])
def test_a_recipe_folder_made_with_other_settings_is_refused_before_any_work(tmp_path, finished):
    from bridgedit.config import ConfigError
    from bridgedit.synthetic.recipe import RecipeSettings, run_recipe

    out = tmp_path / "recipe"
    out.mkdir()
    if finished:  # its model is not handed back as if made with the settings asked for
        (out / "model").mkdir()
        (out / "model" / "model_index.json").write_text("{}")
    older = json.loads(json.dumps(RecipeSettings(tower_steps=1200, tower_precision="fp32").to_dict()))
    del older["bridge_precision"]  # a setting that recipe predates
    (out / "recipe.json").write_text(json.dumps(older))
    with pytest.raises(ConfigError, match="holds a recipe made with other settings") as refused:
        run_recipe(out, RecipeSettings(tower_steps=3600, tower_precision="bf16"))
    for change in ("tower_steps 1200 -> 3600", "tower_precision 'fp32' -> 'bf16'", "bridge_precision None -> 'bf16'"):
        assert change in str(refused.value)
    assert "seed" not in str(refused.value)  # only what differs
    assert sorted(path.name for path in out.iterdir()) == ["model", "recipe.json"][1 - finished :]  # nothing started
    assert json.loads((out / "recipe.json").read_text()) == older


def test_recipe_end_to_end_from_the_command_line(tmp_path, capsys):
    from bridgedit.cli.main import main
    from bridgedit.pipeline import BridgeDiTPipeline
    from bridgedit.synthetic.recipe import RecipeSettings, environment

    out = tmp_path / "demo"
    assert main(["synthetic", "recipe", "--out", str(out), "--scale", "1000"]) == 0
    assert f"model: {out / 'model'}" in capsys.readouterr().out
    timings = json.loads((out / "timings.json").read_text())
    assert timings["total_s"] == sum(timings[stage] for stage in ("world_s", "codecs_and_towers_s", "bridges_s"))
    assert json.loads((out / "environment.json").read_text()) == environment()
    pipe = BridgeDiTPipeline.from_pretrained(out / "model")
    assert pipe.model.config.bridge.fusion == "dca" and pipe.model.config.trainable.policy == "bridges+last_blocks"
    assert isinstance(pipe.video_pipe.vae, PatchVideoCodec)
    assert pipe.generation_defaults == RecipeSettings().generation_defaults
    index = json.loads((out / "model" / "model_index.json").read_text())
    assert index["video"] == "video" and index["audio"] == "audio"  # self-contained: towers copied
    # the towers are the stage-1 (pretrained) towers, apart from the last blocks the bridge stage trained
    from bridgedit.synthetic.recipe import smaller
    from bridgedit.training.trainer import checkpoint_folder

    tower_steps = smaller(RecipeSettings(), 1000).tower_steps
    towers = BridgeDiTPipeline.from_pretrained(
        checkpoint_folder(out / "runs" / "towers", tower_steps)
    ).model.video_tower
    assert all(
        torch.equal(a, b) for a, b in zip(towers.blocks[0].parameters(), pipe.model.video_tower.blocks[0].parameters())
    )
    assert not all(
        torch.equal(a, b)
        for a, b in zip(towers.blocks[-1].parameters(), pipe.model.video_tower.blocks[-1].parameters())
    )

    from bridgedit.synthetic.recipe import install

    bundled = install(out / "model", target=tmp_path / "bundled")  # float16 copy, loaded back in float32
    loaded = BridgeDiTPipeline.from_pretrained(bundled, dtype=torch.float32)
    original = pipe.model.state_dict()
    assert all(torch.equal(v, original[k].half().float()) for k, v in loaded.model.state_dict().items())
    assert loaded.generation_defaults == RecipeSettings().generation_defaults

    stamp = (out / "model" / "bridge" / "model.safetensors").stat().st_mtime_ns
    assert main(["synthetic", "recipe", "--out", str(out), "--scale", "1000"]) == 0  # finished: nothing is redone
    assert (out / "model" / "bridge" / "model.safetensors").stat().st_mtime_ns == stamp

    # reproducible from its seed: run again elsewhere, the same world files and the same weights, bit for bit (the
    # world's .mp4s once differed between runs, and with them the video codec and everything after it)
    again = tmp_path / "again"
    assert main(["synthetic", "recipe", "--out", str(again), "--scale", "1000"]) == 0
    for folder in ("dataset", "model"):
        files = sorted(
            path.relative_to(out)
            for path in (out / folder).rglob("*")
            if path.is_file() and path.suffix in (".mp4", ".wav", ".safetensors")
        )
        assert files and all((out / f).read_bytes() == (again / f).read_bytes() for f in files), folder

    from bridgedit.data.manifest import load_manifest
    from bridgedit.synthetic.scoring import SCORES, score_model, score_references

    records = load_manifest(out / "dataset", split="test")
    scores, statistics = score_model(pipe, records, num_inference_steps=2)
    assert len(scores) == len(records) and all(set(s) == set(SCORES) for s in scores)
    assert all(0.0 <= s[name] <= 1.0 for s in scores for name in SCORES)
    # the same samples' sync, next to its chance level: the per-clip scores' sync, clip by clip
    assert statistics["sync_per_clip"] == pytest.approx([s["sync"] for s in scores])
    assert statistics["sync_above_chance"] == pytest.approx(statistics["sync"] - statistics["sync_chance"])
    references = score_references(pipe, out / "dataset", records)
    assert [len(v) for v in references.values()] == [len(records)] * 2
    assert all(clip[k] == 1.0 for clip in references["real"] for k in ("colour", "shape", "material"))

    # one stream generated next to the other stream of the real clips, held clean: the given one comes back as given
    from bridgedit.synthetic.scoring import generate_for, real_latents

    video_latents, audio_latents = real_latents(pipe, out / "dataset", records)
    next_to_video = list(generate_for(pipe, records, given="video", given_latents=video_latents, num_inference_steps=2))
    next_to_audio = list(generate_for(pipe, records, given="audio", given_latents=audio_latents, num_inference_steps=2))
    with torch.no_grad():
        assert all(  # batched: the codec's convolution rounds a batch otherwise, a grey level at most
            np.abs(frames.astype(int) - pipe.decode_video(latents[None])[0].astype(int)).max() <= 1
            for (_, frames, *_), latents in zip(next_to_video, video_latents)
        )
        assert all(
            np.allclose(audio, pipe.decode_audio(latents[None], record["duration"])[0], atol=1e-5)  # batched
            for (record, _, audio, *_), latents in zip(next_to_audio, audio_latents)
        )


def test_scores_of_a_true_world_clip_are_perfect():
    from bridgedit.synthetic.scoring import score_clip

    settings = WorldSettings(seconds=4 + 1 / 15, max_events=4)
    rng = np.random.default_rng([5, 0])
    scene = draw_scene(rng, settings)
    frames, audio = render_clip(scene, settings, rng)
    scores = score_clip(frames, audio[None], settings.fps, settings.sample_rate, asdict(scene))
    assert scores["sync"] == 1.0 and scores["colour"] == scores["shape"] == scores["material"] == 1.0
    shifted = score_clip(frames, np.roll(audio, 1200)[None], settings.fps, settings.sample_rate, asdict(scene))
    assert shifted["sync"] < 0.5
