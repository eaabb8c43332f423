"""BridgeDiTPipeline against diffusers' own WanPipeline and StableAudioPipeline, plus its API and persistence."""

import json
import logging

import pytest
import torch
from conftest import open_gates

from bridgedit import BridgeConfig, BridgeDiTPipeline, ConfigError, ModelConfig, TrainableConfig, tiny
from bridgedit.checkpoint import CheckpointError

SIZE = dict(height=32, width=32, num_frames=9)  # latent 3 x 4 x 4
TEXT = dict(max_sequence_length=16, progress=False)
VIDEO_PROMPT, AUDIO_PROMPT = "a red ball bounces on the floor", "a loud rubber thud"
TINY_BRIDGE = ModelConfig(
    bridge=BridgeConfig(
        fusion="dca", video_blocks=(0, 2), audio_blocks=(1, 2), width=16, num_heads=2, timestep_embed_dim=16
    ),
    trainable=TrainableConfig(video_last_blocks=1, audio_last_blocks=1),
)


def _pipes():
    return tiny.wan_pipeline(seed=0), tiny.stable_audio_pipeline(seed=1)


def _noise(audio_frames=256, batch=1):
    g = torch.Generator().manual_seed(0)
    return torch.randn(batch, 16, 3, 4, 4, generator=g), torch.randn(batch, 4, audio_frames, generator=g)


@pytest.mark.parametrize("bridge", [None, TINY_BRIDGE], ids=["no-bridge", "identity-dca"])
@pytest.mark.parametrize("negative", [False, True], ids=["null", "negative-prompts"])
def test_native_schedule_reproduces_the_diffusers_pipelines(bridge, negative):
    video_pipe, audio_pipe = _pipes()
    pipe = BridgeDiTPipeline.from_pipes(video_pipe, audio_pipe, bridge)
    x_video, x_audio = _noise(audio_frames=audio_pipe.transformer.config.sample_size)  # Stable Audio's whole window
    negatives = dict(video="blurry", audio="quiet hum") if negative else dict(video=None, audio=None)

    ours = pipe(
        VIDEO_PROMPT,
        AUDIO_PROMPT,
        negative_video_prompt=negatives["video"],
        negative_audio_prompt=negatives["audio"],
        **SIZE,
        audio_seconds=0.5,
        num_inference_steps=4,
        video_guidance=6.0,
        audio_guidance=7.0,
        schedule="native",
        video_latents=x_video,
        audio_latents=x_audio,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
        **TEXT,
    )
    wan = video_pipe(
        VIDEO_PROMPT,
        negative_prompt=negatives["video"],
        **SIZE,
        num_inference_steps=4,
        guidance_scale=6.0,
        latents=x_video.clone(),
        output_type="latent",
        max_sequence_length=16,
    ).frames
    stable_audio = audio_pipe(
        AUDIO_PROMPT,
        negative_prompt=negatives["audio"],
        num_inference_steps=4,
        guidance_scale=7.0,
        latents=x_audio.clone(),
        audio_end_in_s=0.5,
        generator=torch.Generator().manual_seed(7),
        output_type="latent",
    ).audios
    assert (ours.video - wan).abs().max() <= 1e-5
    assert (ours.audio - stable_audio).abs().max() <= 1e-5


def test_coupled_schedule_outputs():
    pipe = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    out = pipe(
        [VIDEO_PROMPT] * 2,
        [AUDIO_PROMPT] * 2,
        **SIZE,
        num_inference_steps=3,
        generator=torch.Generator().manual_seed(0),
        **TEXT,
    )
    assert out.video.shape == (2, 9, 32, 32, 3) and out.video.dtype.name == "uint8"
    assert out.audio.shape == (2, 2, round(9 / 15 * pipe.sample_rate)) and out.audio.dtype.name == "float32"
    assert (out.fps, out.sample_rate) == (15.0, 4000)
    latents = pipe(VIDEO_PROMPT, AUDIO_PROMPT, **SIZE, num_inference_steps=3, output_type="latent", **TEXT)
    assert latents.video.shape == (1, 16, 3, 4, 4) and latents.audio.shape == (1, 4, 300)  # 0.6 s at 4 kHz / hop 8
    tensors = pipe(VIDEO_PROMPT, AUDIO_PROMPT, **SIZE, num_inference_steps=2, output_type="pt", sampler="heun", **TEXT)
    assert tensors.video.shape == (1, 9, 3, 32, 32) and 0 <= tensors.video.min() and tensors.video.max() <= 1


def test_seeded_generation_is_reproducible_and_prompt_shares_one_caption():
    pipe = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    open_gates(pipe.model)
    kwargs = dict(**SIZE, num_inference_steps=2, output_type="latent", **TEXT)
    first = pipe(prompt=VIDEO_PROMPT, generator=torch.Generator().manual_seed(3), **kwargs)
    again = pipe(VIDEO_PROMPT, VIDEO_PROMPT, generator=torch.Generator().manual_seed(3), **kwargs)
    other = pipe(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(3), **kwargs)
    assert torch.equal(first.video, again.video) and torch.equal(first.audio, again.audio)
    assert not torch.equal(first.audio, other.audio)


@pytest.mark.parametrize("given", ["video", "audio"])
def test_one_stream_generated_next_to_a_given_clean_one(given):
    """Video-to-audio / audio-to-video: the given stream is shown to the network clean (t = 0) at every step and
    returned as given; without bridges the generated stream is exactly the joint sample's from the same seed."""
    kwargs = dict(**SIZE, num_inference_steps=3, output_type="latent", **TEXT)
    plain = BridgeDiTPipeline.from_pipes(*_pipes())
    joint = plain(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), **kwargs)
    clean_video, clean_audio = _noise(audio_frames=joint.audio.shape[-1])
    given_kwargs = {f"given_{given}_latents": clean_video if given == "video" else clean_audio}
    alone = plain(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), **given_kwargs, **kwargs)
    generated = "audio" if given == "video" else "video"
    assert torch.equal(getattr(alone, given), given_kwargs[f"given_{given}_latents"])
    assert torch.allclose(getattr(alone, generated), getattr(joint, generated), atol=1e-6)

    bridged = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    open_gates(bridged.model)
    seen = []
    forward = bridged.model.forward

    def spy(x_video, x_audio, t_video, t_audio, *args, **kw):
        seen.append((x_video if given == "video" else x_audio, t_video if given == "video" else t_audio))
        return forward(x_video, x_audio, t_video, t_audio, *args, **kw)

    bridged.model.forward = spy
    first = bridged(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), **given_kwargs, **kwargs)
    assert len(seen) == 3  # one (guided) evaluation per step
    for latents, t in seen:  # (null; conditional) halves, both the given latents at noise level 0
        assert torch.equal(latents, torch.cat([given_kwargs[f"given_{given}_latents"]] * 2)) and not t.any()
    other = {f"given_{given}_latents": -given_kwargs[f"given_{given}_latents"]}
    second = bridged(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), **other, **kwargs)
    assert not torch.allclose(getattr(first, generated), getattr(second, generated))  # the bridges read it


@pytest.mark.parametrize("given", ["video", "audio"])
def test_a_given_streams_guidance_scale_is_skipped(given, monkeypatch):
    """Next to a given stream, the generated stream's guidance alone decides whether a step needs the unconditional
    half: at 1, one conditional pass per step, and the sample differs from the batched (null; conditional) one that
    the given stream's scale used to force only by rounding."""
    import bridgedit.pipeline as pipeline_module

    kwargs = dict(**SIZE, num_inference_steps=3, output_type="latent", **TEXT)
    bridged = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    open_gates(bridged.model)
    clean_video, clean_audio = _noise(audio_frames=bridged(VIDEO_PROMPT, AUDIO_PROMPT, **kwargs).audio.shape[-1])
    generated = "audio" if given == "video" else "video"
    call = {
        f"given_{given}_latents": clean_video if given == "video" else clean_audio,
        f"{given}_guidance": 6.0,
        f"{generated}_guidance": 1.0,
        **kwargs,
    }
    batches = []
    forward = bridged.model.forward

    def spy(x_video, *args, **kw):
        batches.append(x_video.shape[0])
        return forward(x_video, *args, **kw)

    bridged.model.forward = spy
    alone = bridged(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), **call)
    assert batches == [1, 1, 1]

    denoiser = pipeline_module.GuidedDenoiser

    def given_scale_kept(*args, video_scale, audio_scale, **rest):  # the given stream's scale passed on as asked
        return denoiser(*args, video_scale=call["video_guidance"], audio_scale=call["audio_guidance"], **rest)

    monkeypatch.setattr(pipeline_module, "GuidedDenoiser", given_scale_kept)
    batches.clear()
    batched = bridged(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), **call)
    assert batches == [2, 2, 2]
    assert torch.allclose(getattr(alone, generated), getattr(batched, generated), atol=1e-5)


def test_text_encoders_are_offloaded_after_encoding():
    pipe = BridgeDiTPipeline.from_pipes(*_pipes())
    moves = []
    for name, encoder in (("video", pipe.video_pipe.text_encoder), ("audio", pipe.audio_pipe.text_encoder)):
        original = encoder.to
        encoder.to = lambda *args, _original=original, _name=name, **kwargs: (
            moves.append((_name, args)) or _original(*args, **kwargs)
        )
    pipe(VIDEO_PROMPT, AUDIO_PROMPT, **SIZE, num_inference_steps=1, output_type="latent", **TEXT)
    assert moves == []  # not unless asked
    pipe(
        VIDEO_PROMPT,
        AUDIO_PROMPT,
        **SIZE,
        num_inference_steps=1,
        output_type="latent",
        offload_text_encoders=True,
        **TEXT,
    )
    assert moves == [("video", ("cpu",)), ("audio", ("cpu",))]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(height=40), "height must be a positive multiple of 16; got 40"),
        (dict(num_frames=8), "4k\\+1"),
        (dict(num_inference_steps=0), "positive integer"),
        (dict(schedule="karras"), "schedule='karras' is unknown"),
        (dict(sampler="dpm"), "sampler='dpm' is unknown"),
        (dict(output_type="mp4"), "output_type='mp4' is unknown"),
        (dict(prompt="shared"), "either `prompt`"),
        (dict(audio_prompt=["a", "b"]), "1 video prompt\\(s\\) but 2 audio prompt\\(s\\)"),
        (dict(video_latents=torch.zeros(1, 16, 2, 4, 4)), "video_latents has shape"),
        (dict(given_video_latents=torch.zeros(1, 16, 2, 4, 4)), "given_video_latents has shape"),
        (dict(given_video_latents=torch.zeros(1, 16, 3, 4, 4), given_audio_latents=torch.zeros(1, 4, 300)), "not both"),
    ],
)
def test_bad_calls_are_named(kwargs, message):
    pipe = BridgeDiTPipeline.from_pipes(*_pipes())
    call = dict(video_prompt=VIDEO_PROMPT, audio_prompt=AUDIO_PROMPT, **SIZE, num_inference_steps=1, **TEXT)
    call.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        pipe(**call)


def test_empty_prompt_is_allowed_with_a_warning(caplog):
    pipe = BridgeDiTPipeline.from_pipes(*_pipes())
    with caplog.at_level(logging.WARNING, logger="bridgedit.pipeline"):
        pipe("", AUDIO_PROMPT, **SIZE, num_inference_steps=1, output_type="latent", **TEXT)
    assert "empty video prompt" in caplog.text


def test_save_and_load_round_trip_with_copied_towers(tmp_path):
    pipe = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    open_gates(pipe.model, seed=5)  # a "trained" bridge, so the round trip has something to keep
    with torch.no_grad():
        pipe.model.video_tower.blocks[-1].scale_shift_table.add_(0.5)  # and a trained tower block
    pipe.save_pretrained(tmp_path / "model")
    index = json.loads((tmp_path / "model" / "model_index.json").read_text())
    assert index["video"] == "video" and index["audio"] == "audio" and index["bridge"] == "bridge"

    loaded = BridgeDiTPipeline.from_pretrained(tmp_path / "model")
    original_weights, loaded_weights = pipe.model.state_dict(), loaded.model.state_dict()
    assert original_weights.keys() == loaded_weights.keys()
    assert all(torch.equal(original_weights[k], loaded_weights[k]) for k in original_weights)  # bit for bit
    for name in ("text_encoder", "vae", "tokenizer"):
        assert type(getattr(loaded.video_pipe, name)) is type(getattr(pipe.video_pipe, name))
    kwargs = dict(**SIZE, num_inference_steps=2, output_type="latent", **TEXT)
    a = pipe(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(0), **kwargs)
    b = loaded(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(0), **kwargs)
    # same weights in differently allocated (memory-mapped) buffers may take other BLAS paths: ~1e-7 per op
    torch.testing.assert_close(a.video, b.video, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.audio, b.audio, atol=1e-4, rtol=1e-4)


def test_towers_by_reference(tmp_path):
    video_pipe, audio_pipe = _pipes()
    video_pipe.save_pretrained(tmp_path / "wan")
    audio_pipe.save_pretrained(tmp_path / "stable-audio")
    pipe = BridgeDiTPipeline.from_pipes(
        video_pipe,
        audio_pipe,
        TINY_BRIDGE,
        video_source=str(tmp_path / "wan"),
        audio_source=str(tmp_path / "stable-audio"),
    )
    pipe.save_pretrained(tmp_path / "bridged")
    assert not (tmp_path / "bridged" / "video").exists()  # only the bridge is stored
    index = json.loads((tmp_path / "bridged" / "model_index.json").read_text())
    assert index["video"] == str(tmp_path / "wan")
    loaded = BridgeDiTPipeline.from_pretrained(tmp_path / "bridged")
    # the checkpoint trained the last block of each tower: the loaded towers are no longer their sources
    assert loaded.video_source is None and loaded.audio_source is None
    bridges_only = ModelConfig(bridge=TINY_BRIDGE.bridge, trainable=TrainableConfig(policy="bridges"))
    BridgeDiTPipeline.from_pipes(
        video_pipe,
        audio_pipe,
        bridges_only,
        video_source=str(tmp_path / "wan"),
        audio_source=str(tmp_path / "stable-audio"),
    ).save_pretrained(tmp_path / "bridges-only")
    assert BridgeDiTPipeline.from_pretrained(tmp_path / "bridges-only").video_source == str(tmp_path / "wan")


def test_trained_towers_survive_a_save_under_another_policy(tmp_path):
    """Pretrain towers (policy "towers"), then bridge them (another policy): the second save must keep the first
    stage's tower weights, though its own checkpoint only holds the bridges and last blocks."""
    video_pipe, audio_pipe = _pipes()
    video_pipe.save_pretrained(tmp_path / "wan")
    audio_pipe.save_pretrained(tmp_path / "stable-audio")
    towers_config = ModelConfig(bridge=BridgeConfig(fusion="none"), trainable=TrainableConfig(policy="towers"))
    stage1 = BridgeDiTPipeline.from_pipes(
        video_pipe,
        audio_pipe,
        towers_config,
        video_source=str(tmp_path / "wan"),
        audio_source=str(tmp_path / "stable-audio"),
    )
    with torch.no_grad():
        for parameter in stage1.model.parameters():
            parameter.add_(0.01)  # "trained" towers
    stage1.save_pretrained(tmp_path / "stage1")
    trained = {k: v.clone() for k, v in stage1.model.state_dict().items()}

    loaded = BridgeDiTPipeline.from_pretrained(tmp_path / "stage1")
    stage2 = BridgeDiTPipeline.from_pipes(
        loaded.video_pipe,
        loaded.audio_pipe,
        TINY_BRIDGE,
        video_source=loaded.video_source,
        audio_source=loaded.audio_source,
    )
    stage2.save_pretrained(tmp_path / "stage2")
    final = BridgeDiTPipeline.from_pretrained(tmp_path / "stage2").model.state_dict()
    for key, value in trained.items():
        assert torch.equal(final[key], value), key


def test_pipelines_loaded_from_a_folder_are_referenced_not_copied(tmp_path):
    video_pipe, audio_pipe = _pipes()
    video_pipe.save_pretrained(tmp_path / "wan")
    audio_pipe.save_pretrained(tmp_path / "stable-audio")
    from diffusers import StableAudioPipeline, WanPipeline

    pipe = BridgeDiTPipeline.from_pipes(
        WanPipeline.from_pretrained(tmp_path / "wan"),
        StableAudioPipeline.from_pretrained(tmp_path / "stable-audio"),
        TINY_BRIDGE,
    )
    assert pipe.video_source == str(tmp_path / "wan") and pipe.audio_source == str(tmp_path / "stable-audio")
    pipe.save_pretrained(tmp_path / "bridged")
    assert sorted(p.name for p in (tmp_path / "bridged").iterdir()) == ["bridge", "model_index.json"]


def test_loading_checks_keys_and_shapes(tmp_path):
    pipe = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    pipe.save_pretrained(tmp_path / "model")
    config_path = tmp_path / "model" / "bridge" / "config.json"
    config = json.loads(config_path.read_text())
    config["model"]["bridge"]["width"] = 8  # the stored weights are 16 wide
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        BridgeDiTPipeline.from_pretrained(tmp_path / "model")
    config["model"]["bridge"]["width"] = 16
    config["model"]["trainable"]["video_last_blocks"] = 2  # one more tower block expected than stored
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="missing key"):
        BridgeDiTPipeline.from_pretrained(tmp_path / "model")


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json is missing"):
        BridgeDiTPipeline.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no model folder"):
        BridgeDiTPipeline.from_pretrained(tmp_path / "nowhere" / "deeper")


def test_bf16_generation_on_a_cpu_runs_attention_as_matrix_products(monkeypatch):
    """In bf16 on a CPU every attention of a denoising step goes through bridgedit.cpu_attention, and the sample is
    as close to the float32 one as the sample made with PyTorch's fused attention in bf16."""
    from bridgedit import pipeline as pipeline_module

    modes, covered_dtypes = [], [(torch.bfloat16,)]

    class Recorded(pipeline_module.MatmulAttention):
        def __init__(self):
            super().__init__(dtypes=covered_dtypes[0])
            modes.append(self)

    monkeypatch.setattr(pipeline_module, "MatmulAttention", Recorded)
    pipe = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    open_gates(pipe.model)
    kwargs = dict(**SIZE, num_inference_steps=2, output_type="latent", **TEXT)

    def sample():
        return pipe(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(3), **kwargs)

    reference = sample()
    assert modes[-1].calls == 0  # float32: PyTorch's kernel
    pipe.to(dtype=torch.bfloat16)
    ours = sample()
    towers_attentions = 2 * 2 * 2 * 3  # 2 steps (guidance passes batched), 2 towers, self + cross, 3 blocks
    assert modes[-1].calls >= towers_attentions
    covered_dtypes[0] = ()  # the same in bf16 with PyTorch's fused kernel
    fused = sample()
    assert modes[-1].calls == 0

    def relative_rms(x, y):
        return ((x.float() - y).square().mean().sqrt() / y.square().mean().sqrt()).item()

    for stream in ("video", "audio"):
        expected = getattr(reference, stream)
        ours_error, fused_error = (
            relative_rms(getattr(ours, stream), expected),
            relative_rms(getattr(fused, stream), expected),
        )
        assert 0 < ours_error <= 1.25 * fused_error, (stream, ours_error, fused_error)  # measured: 2.1 %, 4.8 % both


def test_bridges_follow_the_towers_dtype_without_touching_fp32_tower_modules(tmp_path):
    video_pipe, audio_pipe = _pipes()
    video_pipe.save_pretrained(tmp_path / "wan")
    from diffusers import WanPipeline

    wan = WanPipeline.from_pretrained(tmp_path / "wan", dtype=torch.bfloat16)
    kept = wan.transformer.blocks[0].scale_shift_table.dtype  # diffusers keeps it in float32
    assert kept == torch.float32
    pipe = BridgeDiTPipeline.from_pipes(wan, audio_pipe, TINY_BRIDGE)
    assert next(pipe.model.bridges.parameters()).dtype == torch.bfloat16
    assert wan.transformer.blocks[0].scale_shift_table.dtype == torch.float32


def test_models_saved_before_the_codec_moved_still_load():
    """The bundled demo model's video pipeline names its codec `bridgedit.patch_codec` (where it lived when the model
    was saved); the codec now lives with the synthetic world, and the old name still loads it."""
    import json

    from bridgedit.generation import BUNDLED_MODEL
    from bridgedit.synthetic.patch_codec import PatchVideoCodec

    index = json.loads((BUNDLED_MODEL / "video" / "model_index.json").read_text())
    assert index["vae"] == ["bridgedit.patch_codec", "PatchVideoCodec"]
    pipe = BridgeDiTPipeline.from_pretrained(BUNDLED_MODEL)
    assert type(pipe.video_pipe.vae) is PatchVideoCodec


def test_a_clip_beyond_the_models_positional_table_is_refused_naming_the_limit():
    pipe = tiny.bridgedit_pipeline(seed=0)
    positions = pipe.video_pipe.transformer.config.rope_max_seq_len
    limits = pipe.model_limits()
    assert limits["height"] == limits["width"] == positions * 2 * pipe.strides.video_spatial  # Wan's 2 x 2 patches
    assert limits["num_frames"] == (positions - 1) * pipe.strides.video_temporal + 1
    too_many = (limits["num_frames"] - 1) // 4 * 4 + 5
    with pytest.raises(ConfigError, match=f"frames {too_many} is beyond this model's limit of {limits['num_frames']}"):
        pipe(VIDEO_PROMPT, AUDIO_PROMPT, height=32, width=32, num_frames=too_many, **TEXT)
    assert limits["audio_seconds"] == pipe.audio_pipe.projection_model.config.max_value  # seconds clamp beyond it
    with pytest.raises(ConfigError, match="audio seconds 1000.5 is beyond this model's limit of 512 \\(its duration"):
        pipe(VIDEO_PROMPT, AUDIO_PROMPT, height=32, width=32, num_frames=9, audio_seconds=1000.5, **TEXT)
