"""The tiny offline components are the real classes and run in the real diffusers pipelines."""

import torch
from diffusers import StableAudioPipeline, WanPipeline

from bridgedit import tiny


def test_tokenizer_is_built_offline_and_covers_any_text():
    tok = tiny.tokenizer()
    words = tok("a red ball bounces").input_ids
    assert len(words) == 5 and words[-1] == tok.eos_token_id  # one piece per known word, then </s>
    assert tok.unk_token_id not in words
    spelled = tok("zebra").input_ids  # unknown word: spelled out in characters
    assert len(spelled) > 2 and tok.unk_token_id not in spelled


def test_tiny_wan_pipeline_generates_frames():
    pipe = tiny.wan_pipeline(num_layers=2)
    assert isinstance(pipe, WanPipeline)
    out = pipe(
        "a red ball bounces",
        negative_prompt="",
        height=32,
        width=32,
        num_frames=5,
        num_inference_steps=2,
        output_type="pt",
        max_sequence_length=tiny.TINY_MAX_TEXT_TOKENS,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.frames.shape == (1, 5, 3, 32, 32)
    assert torch.isfinite(out.frames).all()


def test_tiny_stable_audio_pipeline_generates_stereo_audio():
    pipe = tiny.stable_audio_pipeline(num_layers=2)
    assert isinstance(pipe, StableAudioPipeline)
    out = pipe("a loud clang", num_inference_steps=2, audio_end_in_s=0.5, generator=torch.Generator().manual_seed(0))
    assert out.audios.shape == (1, 2, int(0.5 * pipe.vae.sampling_rate))
    assert torch.isfinite(out.audios).all()


def test_schedulers_use_the_real_models_settings():
    wan = tiny.wan_scheduler().config
    assert (wan.prediction_type, wan.use_flow_sigmas, wan.flow_shift) == ("flow_prediction", True, 3.0)
    audio = tiny.stable_audio_scheduler().config
    assert (audio.prediction_type, audio.sigma_min, audio.sigma_max, audio.sigma_data) == (
        "v_prediction",
        0.3,
        500.0,
        1.0,
    )


def test_tiny_vaes_encode_to_what_their_transformers_take():
    wan_vae, oobleck = tiny.wan_vae(), tiny.oobleck_vae()
    video = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    latents = wan_vae.encode(video).latent_dist.mode()
    assert latents.shape == (1, tiny.WAN_TRANSFORMER_CONFIG["in_channels"], 3, 4, 4)
    assert wan_vae.decode(latents).sample.shape == video.shape
    audio = torch.rand(1, 2, 800) * 2 - 1
    audio_latents = oobleck.encode(audio).latent_dist.mode()
    assert audio_latents.shape == (1, tiny.STABLE_AUDIO_TRANSFORMER_CONFIG["in_channels"], 100)
    assert oobleck.decode(audio_latents).sample.shape == audio.shape
