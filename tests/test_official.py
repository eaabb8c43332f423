"""The authors' released checkpoints: conversion, and equality with the release's own block equations.

The reference below is this test's own: the release's bridge block (../shared/official-release.md, the paper's
Eq. 7-10) written out with plain matmuls, a hand-made rotary rotation and softmax over the release's state-dict
keys, driven between diffusers' tower blocks the way the release's `train_joint.forward` drives them. It shares
no code with bridgedit's model.
"""

import json
import math
import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bridgedit import tiny
from bridgedit.checkpoint import CheckpointError
from bridgedit.cli.main import main
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.release import RELEASE_GENERATION_DEFAULTS

DEPTH, VIDEO_POINTS, AUDIO_POINTS = tiny.STANDIN_DEPTH, tiny.STANDIN_VIDEO_POINTS, tiny.STANDIN_AUDIO_POINTS
QK, HEADS = tiny.STANDIN_WIDTH, tiny.STANDIN_HEADS  # attention width and heads; the towers': Wan 256, Stable Audio 32
TRAINED_BLOCKS = tiny.STANDIN_TRAINED_BLOCKS  # the release trains the first blocks of each tower
KINDS = ("dca", "full_attention", "v2a", "a2v", "additive")


# ----------------------------------------------------------------------------------------------------
# A checkpoint in the release's layout
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    root = tmp_path_factory.mktemp("towers")
    video, audio = tiny.wan_pipeline(num_layers=DEPTH, seed=0), tiny.stable_audio_pipeline(num_layers=DEPTH, seed=1)
    video.save_pretrained(root / "wan")
    audio.save_pretrained(root / "stable-audio")
    return {"video": str(root / "wan"), "audio": str(root / "stable-audio"), "video_pipe": video, "audio_pipe": audio}


def release_checkpoint(towers, fusion, seed=0):
    """{"state_dict": ...} as the release's `on_save_checkpoint` writes it: the first blocks of each tower (changed
    from the pretrained ones), then the bridges' own state_dict (random, non-zero) under `N.`."""
    return tiny.release_checkpoint(
        towers["video_pipe"].transformer, towers["audio_pipe"].transformer, fusion=fusion, seed=seed
    )


def convert(towers, tmp_path, fusion, checkpoint=None, name="model", extra=()):
    path = tmp_path / f"{name}.ckpt"
    torch.save(checkpoint if checkpoint is not None else release_checkpoint(towers, fusion), path)
    out = tmp_path / name
    args = [
        "convert-official",
        str(path),
        "--out",
        str(out),
        "--num-heads",
        str(HEADS),
        "--video-bridge-points",
        ",".join(map(str, VIDEO_POINTS)),
        "--audio-bridge-points",
        ",".join(map(str, AUDIO_POINTS)),
        "--video-model",
        towers["video"],
        "--audio-model",
        towers["audio"],
        *extra,
    ]
    if fusion is not None:
        args += ["--fusion", fusion]
    return main(args), out, path


# ----------------------------------------------------------------------------------------------------
# The release's equations, written out
# ----------------------------------------------------------------------------------------------------


def _linear(x, state, name):
    return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]


def _layer_norm(x):
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(-1, keepdim=True) + 1e-6)


def _modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def _mlp(x, state, stream):
    hidden = _linear(x, state, f"mlp_{stream}.fc1")
    hidden = 0.5 * hidden * (1 + torch.tanh(math.sqrt(2 / math.pi) * (hidden + 0.044715 * hidden**3)))  # GELU, tanh
    return _linear(hidden, state, f"mlp_{stream}.fc2")


def _rotate(x):
    """Rotary position embedding over the token index, pairs (x[2i], x[2i+1]) rotated by pos * 10000^(-2i/D)."""
    _, _, length, dim = x.shape
    angle = torch.arange(length, dtype=torch.float64)[:, None] * 10000.0 ** (-torch.arange(0, dim, 2) / dim)[None]
    cos, sin = torch.cos(angle).float(), torch.sin(angle).float()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)


def _heads(x):
    return x.unflatten(-1, (HEADS, -1)).transpose(1, 2)  # (B, N, D) -> (B, H, N, D / H)


def _attend(q, k, v, scale):
    return (torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v).transpose(1, 2).flatten(2)


def release_block(state, fusion, video, audio, video_temb, audio_temb):
    """One released bridge block (CrossDiTBlockAdaLN, FullDiTBlockAdaLN or AddFusionDiTBlockAdaLN)."""
    if fusion == "additive":
        gate_1, shift_1, scale_1, gate_mlp_1 = _linear(F.silu(video_temb), state, "adaln_modulation_1.1").chunk(4, 1)
        gate_2, shift_2, scale_2, gate_mlp_2 = _linear(F.silu(audio_temb), state, "adaln_modulation_2.1").chunk(4, 1)
        audio_info = _linear(audio.mean(1), state, "audio_to_video_proj")
        video_info = _linear(video.mean(1), state, "video_to_audio_proj")
        video = video + gate_1[:, None] * audio_info[:, None]
        audio = audio + gate_2[:, None] * video_info[:, None]
        video = video + gate_mlp_1[:, None] * _mlp(_modulate(_layer_norm(video), shift_1, scale_1), state, 1)
        audio = audio + gate_mlp_2[:, None] * _mlp(_modulate(_layer_norm(audio), shift_2, scale_2), state, 2)
        return video, audio
    mods_1 = _linear(F.silu(video_temb), state, "adaln_modulation_1.1").chunk(6, 1)
    mods_2 = _linear(F.silu(audio_temb), state, "adaln_modulation_2.1").chunk(6, 1)
    x_1, x_2 = _modulate(_layer_norm(video), mods_1[0], mods_1[1]), _modulate(_layer_norm(audio), mods_2[0], mods_2[1])
    q1, k1, v1 = (_heads(_linear(x_1, state, f"attn.{p}_proj_1")) for p in "qkv")
    q2, k2, v2 = (_heads(_linear(x_2, state, f"attn.{p}_proj_2")) for p in "qkv")
    q1, k1, q2, k2 = _rotate(q1), _rotate(k1), _rotate(q2), _rotate(k2)  # each stream over its own token index
    head_dim = QK // HEADS
    if fusion == "full_attention":  # logits scaled twice by head_dim ** -0.5, as the release's flash call does
        out = _attend(torch.cat([q1, q2], 2), torch.cat([k1, k2], 2), torch.cat([v1, v2], 2), 1 / head_dim)
        o1, o2 = out[:, : video.shape[1]], out[:, video.shape[1] :]
    else:
        scale = head_dim**-0.5
        o1 = _attend(q1, k2, v2, scale) if fusion in ("dca", "a2v") else _attend(q1, k1, v1, scale)
        o2 = _attend(q2, k1, v1, scale) if fusion in ("dca", "v2a") else _attend(q2, k2, v2, scale)
    video = video + mods_1[2][:, None] * _linear(o1, state, "attn.o_proj_1")
    audio = audio + mods_2[2][:, None] * _linear(o2, state, "attn.o_proj_2")
    video = video + mods_1[5][:, None] * _mlp(_modulate(_layer_norm(video), mods_1[3], mods_1[4]), state, 1)
    audio = audio + mods_2[5][:, None] * _mlp(_modulate(_layer_norm(audio), mods_2[3], mods_2[4]), state, 2)
    return video, audio


def release_towers(towers, checkpoint):
    """Copies of the pretrained towers with the checkpoint's blocks loaded, as the release's load_ckpt does."""
    import copy

    video = copy.deepcopy(towers["video_pipe"].transformer).float()
    audio = copy.deepcopy(towers["audio_pipe"].transformer).float()
    state = checkpoint["state_dict"]
    video.load_state_dict({k: v for k, v in state.items() if k.startswith("blocks.")}, strict=False)
    audio.load_state_dict({k: v for k, v in state.items() if k.startswith("transformer_blocks.")}, strict=False)
    return video, audio


@torch.no_grad()
def release_forward(video_model, audio_model, checkpoint, fusion, inputs):
    """The release's joint forward: each tower's embedding, its blocks in segments, a bridge after each point (on
    the video tokens and the audio tokens with Stable Audio's global token), then each tower's output layers."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    x_video, x_audio = inputs["video_latents"], inputs["audio_latents"]
    rotary_video = video_model.rope(x_video)
    video = video_model.patch_embedding(x_video).flatten(2).transpose(1, 2)
    video_temb, timestep_proj, text, _ = video_model.condition_embedder(
        inputs["t_video"], inputs["video_conditions"].text_states, None
    )
    timestep_proj = timestep_proj.unflatten(1, (6, -1))
    conditions = inputs["audio_conditions"]
    cross = audio_model.cross_attention_proj(conditions.text_states)
    audio_temb = audio_model.timestep_proj(audio_model.time_proj(inputs["t_audio"]))
    audio = audio_model.proj_in((audio_model.preprocess_conv(x_audio) + x_audio).transpose(1, 2))
    audio = torch.cat([audio_model.global_proj(conditions.global_states) + audio_temb[:, None], audio], dim=1)
    rotary_audio = get_1d_rotary_pos_embed(
        audio_model.config.attention_head_dim // 2, audio.shape[1], use_real=True, repeat_interleave_real=False
    )
    bridges = checkpoint["state_dict"]
    start_video = start_audio = 0
    for index, (video_point, audio_point) in enumerate(zip(VIDEO_POINTS + (DEPTH - 1,), AUDIO_POINTS + (DEPTH - 1,))):
        for block in video_model.blocks[start_video : video_point + 1]:
            video = block(video, text, timestep_proj, rotary_video)
        for block in audio_model.transformer_blocks[start_audio : audio_point + 1]:
            audio = block(audio, None, cross, None, rotary_audio)
        start_video, start_audio = video_point + 1, audio_point + 1
        if index < len(VIDEO_POINTS):
            state = {k[len(f"{index}.") :]: v for k, v in bridges.items() if k.startswith(f"{index}.")}
            video, audio = release_block(state, fusion, video, audio, video_temb, audio_temb)
    # Wan's output layers and unpatchify; Stable Audio's output layers without the global token
    shift, scale = (video_model.scale_shift_table + video_temb[:, None]).chunk(2, dim=1)
    video = video_model.proj_out(video_model.norm_out(video) * (1 + scale) + shift)
    frames, height, width = x_video.shape[2], x_video.shape[3] // 2, x_video.shape[4] // 2
    video = video.reshape(x_video.shape[0], frames, height, width, 1, 2, 2, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
    video = video.flatten(6, 7).flatten(4, 5).flatten(2, 3)
    audio = audio_model.proj_out(audio).transpose(1, 2)[:, :, 1:]
    return video, audio_model.postprocess_conv(audio) + audio


# ----------------------------------------------------------------------------------------------------
# Equality
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", KINDS)
def test_converted_model_equals_the_release_equations(towers, tmp_path, inputs, fusion):
    checkpoint = release_checkpoint(towers, fusion)
    code, folder, _ = convert(towers, tmp_path, fusion, checkpoint)
    assert code == 0
    pipe = BridgeDiTPipeline.from_pretrained(folder)
    config = pipe.model.config
    assert config.bridge.fusion == fusion and config.bridge.width == QK
    assert config.trainable.policy == "bridges+first_blocks" and config.trainable.video_first_blocks == TRAINED_BLOCKS
    with torch.no_grad():
        got_video, got_audio = pipe.model(**inputs)
    want_video, want_audio = release_forward(*release_towers(towers, checkpoint), checkpoint, fusion, inputs)
    assert (got_video - want_video).abs().max() <= 1e-5
    assert (got_audio - want_audio).abs().max() <= 1e-5


def test_bridges_and_trained_blocks_matter(towers, tmp_path, inputs):
    """The equality above is of bridged towers: without the converted weights the output is different."""
    checkpoint = release_checkpoint(towers, "dca")
    convert(towers, tmp_path, "dca", checkpoint)
    pipe = BridgeDiTPipeline.from_pretrained(tmp_path / "model")
    separate = BridgeDiTPipeline.from_pipes(
        tiny.wan_pipeline(num_layers=DEPTH, seed=0), tiny.stable_audio_pipeline(num_layers=DEPTH, seed=1)
    )
    with torch.no_grad():
        bridged, plain = pipe.model(**inputs), separate.model(**inputs)
    assert (bridged[0] - plain[0]).abs().max() > 1e-2 and (bridged[1] - plain[1]).abs().max() > 1e-2


def test_native_sampling_with_negative_prompts_equals_the_schedulers_in_lockstep(towers, tmp_path):
    """The converted model's native schedule (UniPC + cosine DPM-Solver, CFG on both streams, negative prompts)
    against a loop of the two diffusers schedulers stepping the release's forward."""
    import copy

    fusion, steps, w_video, w_audio = "dca", 4, 6.0, 7.0
    checkpoint = release_checkpoint(towers, fusion)
    convert(towers, tmp_path, fusion, checkpoint)
    pipe = BridgeDiTPipeline.from_pretrained(tmp_path / "model")
    prompts = dict(
        video_prompt="a red ball bounces",
        audio_prompt="a dull thud",
        negative_video_prompt="blurred, static",
        negative_audio_prompt="low quality",
    )
    size = dict(height=64, width=64, num_frames=9, fps=15.0, max_sequence_length=32)
    noise = torch.Generator().manual_seed(3)
    x_video = torch.randn(1, 16, 3, 8, 8, generator=noise)
    x_audio = torch.randn(1, 4, 40, generator=noise)
    out = pipe(
        **prompts,
        **size,
        num_inference_steps=steps,
        video_guidance=w_video,
        audio_guidance=w_audio,
        schedule="native",
        video_latents=x_video,
        audio_latents=x_audio,
        output_type="latent",
        generator=torch.Generator().manual_seed(7),
        progress=False,
    )

    states = pipe.encode_prompts(
        [prompts["video_prompt"]],
        [prompts["audio_prompt"]],
        negative_video_prompt=prompts["negative_video_prompt"],
        negative_audio_prompt=prompts["negative_audio_prompt"],
        audio_seconds=9 / 15,
        max_sequence_length=32,
    )
    video_model, audio_model = release_towers(towers, checkpoint)
    video_scheduler = copy.deepcopy(towers["video_pipe"].scheduler)
    audio_scheduler = copy.deepcopy(towers["audio_pipe"].scheduler)
    video_scheduler.set_timesteps(steps)
    audio_scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(7)
    video, audio = x_video.clone(), x_audio * audio_scheduler.init_noise_sigma
    for t_video, t_audio in zip(video_scheduler.timesteps, audio_scheduler.timesteps):
        from bridgedit.towers import AudioConditions, VideoConditions

        batch = {
            "video_latents": torch.cat([video, video]),
            "audio_latents": audio_scheduler.scale_model_input(torch.cat([audio, audio]), t_audio),
            "t_video": t_video.expand(2),
            "t_audio": t_audio.expand(2),
            "video_conditions": VideoConditions(torch.cat([states.null_video.text_states, states.video.text_states])),
            "audio_conditions": AudioConditions(
                torch.cat([states.null_audio.text_states, states.audio.text_states]),
                torch.cat([states.null_audio.global_states, states.audio.global_states]),
            ),
        }
        pred_video, pred_audio = release_forward(video_model, audio_model, checkpoint, fusion, batch)
        null_video, cond_video = pred_video.chunk(2)
        null_audio, cond_audio = pred_audio.chunk(2)
        video = video_scheduler.step(null_video + w_video * (cond_video - null_video), t_video, video).prev_sample
        audio = audio_scheduler.step(
            null_audio + w_audio * (cond_audio - null_audio), t_audio, audio, generator=generator
        ).prev_sample
    assert (out.video - video).abs().max() <= 1e-5
    assert (out.audio - audio).abs().max() <= 1e-5


# ----------------------------------------------------------------------------------------------------
# The folder, and generating from it
# ----------------------------------------------------------------------------------------------------


def test_converted_folder_carries_the_release_sampling_defaults(towers, tmp_path):
    code, folder, _ = convert(towers, tmp_path, "dca")
    assert code == 0
    pipe = BridgeDiTPipeline.from_pretrained(folder)
    defaults = pipe.generation_defaults
    assert defaults == RELEASE_GENERATION_DEFAULTS
    assert (
        defaults["schedule"],
        defaults["num_inference_steps"],
        defaults["video_guidance"],
        defaults["audio_guidance"],
    ) == ("native", 50, 6.0, 7.0)
    assert (defaults["height"], defaults["width"], defaults["num_frames"], defaults["fps"]) == (480, 832, 81, 15.0)
    assert defaults["negative_audio_prompt"] == "Low quality, unclear and noisy."
    from bridgedit.config import ClipSpec, CodecStrides, SequenceLengths

    lengths = SequenceLengths.compute(ClipSpec(audio_length_rounding=defaults["audio_length_rounding"]), CodecStrides())
    assert lengths.audio_latent_length == 116 and lengths.video_tokens == 32_760  # the release's sizes


def test_converted_model_generates_through_the_cli(towers, tmp_path, capsys):
    import av

    convert(towers, tmp_path, "full_attention")
    video = tmp_path / "clip.mp4"
    assert (
        main(
            [
                "generate",
                "--model",
                str(tmp_path / "model"),
                "--video-prompt",
                "a red ball",
                "--audio-prompt",
                "a thud",
                "--out",
                str(video),
                "--height",
                "64",
                "--width",
                "64",
                "--frames",
                "9",
                "--steps",
                "2",
            ]
        )
        == 0
    )
    with av.open(str(video)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}


def test_deepspeed_layout_converts_the_same(towers, tmp_path, inputs):
    lightning = release_checkpoint(towers, "dca")
    module = {}
    for key, value in lightning["state_dict"].items():
        prefix = (
            "video_diffusion."
            if key.startswith("blocks.")
            else "audio_diffusion."
            if key.startswith("transformer_blocks.")
            else "dual_dit_blocks."
        )
        module[prefix + key] = value
    convert(towers, tmp_path, "dca", lightning, name="lightning")
    convert(towers, tmp_path, "dca", {"module": module, "ds_version": "0.16"}, name="deepspeed")
    a = BridgeDiTPipeline.from_pretrained(tmp_path / "lightning")
    b = BridgeDiTPipeline.from_pretrained(tmp_path / "deepspeed")
    with torch.no_grad():
        assert all(torch.equal(x, y) for x, y in zip(a.model(**inputs), b.model(**inputs)))


def test_one_way_kinds_report_the_keys_the_release_never_reads(towers, tmp_path, capsys):
    assert convert(towers, tmp_path, "v2a")[0] == 0
    assert "ignored 8 key(s) the release's own forward never reads" in capsys.readouterr().out


@pytest.mark.slow  # seconds: the quick core stays under a minute
def test_describe_reports_the_released_architecture(capsys):
    assert main(["describe", "--fusion", "full_attention", "--json"]) == 0
    import json

    description = json.loads(capsys.readouterr().out)
    assert description["lengths"]["audio_latent_length"] == 116 and description["lengths"]["video_tokens"] == 32_760
    assert description["flops"]["bridges"] > 0 and description["parameters"]["bridges"] > 0


# ----------------------------------------------------------------------------------------------------
# Bad checkpoints: one line, no traceback, nothing written
# ----------------------------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _refused(towers, tmp_path, capsys, checkpoint, fusion="dca", message=""):
    code, out, _ = convert(towers, tmp_path, fusion, checkpoint)
    err = capsys.readouterr().err
    assert code == 2 and not out.exists(), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and message in err, err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.")]  # no staging folder left behind
    return err


def test_a_pickle_that_would_run_code_is_refused_without_running(towers, tmp_path, capsys):
    marker = tmp_path / "ran"
    checkpoint = release_checkpoint(towers, "dca")
    checkpoint["callbacks"] = _RunsCode(marker)
    _refused(towers, tmp_path, capsys, checkpoint, message="refused: it needs the global")
    assert not marker.exists()


def test_truncated_file_is_refused(towers, tmp_path, capsys):
    path = tmp_path / "model.ckpt"
    torch.save(release_checkpoint(towers, "dca"), path)
    data = path.read_bytes()
    code = main(["convert-official", str(path.with_name("cut.ckpt")), "--out", str(tmp_path / "model")])
    assert code == 2  # a missing file: named
    path.with_name("cut.ckpt").write_bytes(data[: len(data) // 2])
    code = main(
        [
            "convert-official",
            str(path.with_name("cut.ckpt")),
            "--out",
            str(tmp_path / "model"),
            "--video-model",
            towers["video"],
            "--audio-model",
            towers["audio"],
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "truncated or corrupt" in err and "Traceback" not in err
    assert not (tmp_path / "model").exists()


def test_missing_extra_and_misshaped_keys_are_listed(towers, tmp_path, capsys):
    checkpoint = release_checkpoint(towers, "dca")
    state = checkpoint["state_dict"]
    del state["1.mlp_2.fc2.bias"]
    state["0.attn.extra_proj.weight"] = torch.zeros(2, 2)
    state["blocks.0.attn1.to_q.weight"] = torch.zeros(3, 3)
    err = _refused(towers, tmp_path, capsys, checkpoint, message="does not fit the released architecture")
    assert "1 missing" in err and "bridges.blocks.1.audio.mlp.net.2.bias" in err
    assert "0.attn.extra_proj.weight" in err and "blocks.0.attn1.to_q.weight (3, 3)" in err


def test_contradicting_fusion_is_refused(towers, tmp_path, capsys):
    _refused(
        towers,
        tmp_path,
        capsys,
        release_checkpoint(towers, "additive"),
        fusion="dca",
        message="--fusion dca contradicts the checkpoint",
    )


def test_lora_checkpoints_are_refused_by_name(towers, tmp_path, capsys):
    checkpoint = release_checkpoint(towers, "dca")
    checkpoint["state_dict"]["blocks.7.attn1.to_q.lora_A.default.weight"] = torch.zeros(4, 256)
    _refused(towers, tmp_path, capsys, checkpoint, message="LoRA adapters")


def test_unpickler_errors_name_the_global(tmp_path):
    from bridgedit.official import read_checkpoint

    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as file:
        pickle.dump({"state_dict": _RunsCode(tmp_path / "ran")}, file)
    with pytest.raises(CheckpointError, match="system"):
        read_checkpoint(path)
    assert not (tmp_path / "ran").exists()


# ----------------------------------------------------------------------------------------------------
# Fine-tuning from a converted checkpoint
# ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fine_tuning_from_a_converted_checkpoint_resumes_exactly(towers, tmp_path):
    from bridgedit.synthetic import make_dataset
    from bridgedit.training.config import TrainConfig
    from bridgedit.training.trainer import Trainer

    convert(towers, tmp_path, "dca")
    make_dataset(tmp_path / "dataset", clips=4, seed=1)

    def config(run):
        return TrainConfig.from_dict(
            {
                "model": {"base": str(tmp_path / "model")},
                "data": {"dataset": str(tmp_path / "dataset"), "max_sequence_length": 32},
                "optim": {"lr": 1e-3, "warmup_steps": 1, "schedule": "constant", "max_grad_norm": None},
                "train": {
                    "steps": 3,
                    "batch_size": 2,
                    "mixed_precision": "no",
                    "gradient_checkpointing": False,
                    "caption_dropout": {"video": 0.0, "audio": 0.0},
                    "timesteps": {"distribution": "sobol", "coupling": "integer"},
                },
                "checkpoint": {"dir": str(tmp_path / run), "every": 2},
                "log": {"every": 100},
            }
        )

    straight = Trainer(config("straight"), progress=False)
    before = {n: p.detach().clone() for n, p in straight.model.named_parameters() if p.requires_grad}
    straight.run()
    assert straight.model.config.trainable.policy == "bridges+first_blocks"
    # trained with coupled (integer) timesteps: its checkpoints hold a given stream by replacement sampling
    index = json.loads((tmp_path / "straight" / "checkpoint-000003" / "model_index.json").read_text())
    assert index["generation_defaults"]["hold"] == "renoised"
    assert any((p - before[n]).abs().max() > 0 for n, p in straight.model.named_parameters() if p.requires_grad)
    Trainer(config("split"), progress=False).run(stop_at=2)
    resumed = Trainer(config("split"), resume="latest", progress=False)
    assert resumed.step == 2 and resumed.run().steps == 3
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.equal(a, b), name


# ----------------------------------------------------------------------------------------------------
# The README's section runs as written
# ----------------------------------------------------------------------------------------------------


def _readme_blocks(section: str) -> list[str]:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    body = readme.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return body.split("```bash\n")[1:]


def _commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    text = block.split("```", 1)[0].replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_readme_release_section_runs_offline_as_written(tmp_path):
    import shlex
    import subprocess
    import sys

    online, standin = _readme_blocks("Run the paper's released model")[:2]
    bin_dir = Path(sys.executable).parent
    for command in _commands(standin):
        argv = shlex.split(command)
        assert argv[0].startswith(".venv/bin/"), command
        argv[0] = str(bin_dir / argv[0].removeprefix(".venv/bin/"))
        result = subprocess.run(
            argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
        assert result.returncode == 0, (command, result.stderr[-2000:])
    assert (tmp_path / "standin" / "ball.mp4").is_file() and "AV-Align" in result.stdout
    # the online block names the same subcommands and flags (it needs the hub, so it is only parsed here)
    from bridgedit.cli.main import build_parser

    parser = build_parser()
    for command in _commands(online):
        argv = shlex.split(command)[1:]
        parser.parse_args(argv)


def test_a_hub_checkpoint_offline_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(
        [
            "convert-official",
            "Guan123/BridgeDiT:vgg-ss/bicross-1.3B/epoch=20-step=3318.ckpt",
            "--out",
            str(tmp_path / "model"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot download Guan123/BridgeDiT:vgg-ss" in err and "HF_HUB_OFFLINE" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "model").exists()
