"""Tiny components of the real classes, built fully offline, for tests and CPU experiments.

Everything here is the real diffusers / transformers class at a toy size with random weights, so code
that works on these works on the public weights too. Schedulers use the real models' settings.
Nothing is downloaded: the tokenizer is made from an in-memory vocabulary.

    >>> from bridgedit import tiny
    >>> video_pipe = tiny.wan_pipeline(seed=0)          # a diffusers WanPipeline
    >>> audio_pipe = tiny.stable_audio_pipeline(seed=0)  # a diffusers StableAudioPipeline
"""

from __future__ import annotations

import string

import torch
from diffusers import (
    AutoencoderKLWan,
    AutoencoderOobleck,
    CosineDPMSolverMultistepScheduler,
    StableAudioDiTModel,
    StableAudioPipeline,
    StableAudioProjectionModel,
    UniPCMultistepScheduler,
    WanPipeline,
    WanTransformer3DModel,
)
from transformers import T5Config, T5EncoderModel, T5Tokenizer, UMT5Config, UMT5EncoderModel

#: Whole words get their own piece; anything else falls back to single characters (then <unk>).
TINY_WORDS = (
    "a an the of on in with and at to is are from by its it as while then "
    "red green blue yellow white black orange purple gray small large big tiny "
    "ball cube box drum bell glass metal wood wooden stone rubber paper water hammer "
    "bounce bounces bouncing strike strikes hit hits flash flashes ring rings clang thud tap "
    "click knock sound sounds loud soft sharp dull low high room floor table dark bright "
    "video audio background noise hum rain wind scene camera moving slowly fast "
    "up down hollow repeated each time object metallic beige shiny that ringing brass dog "
    "lamp electric beep short above off runs underneath falls diamond"
).split()

TINY_TEXT_WIDTH = 32  # d_model of the tiny text encoders
TINY_MAX_TEXT_TOKENS = 32


def tokenizer(max_length: int = TINY_MAX_TEXT_TOKENS) -> T5Tokenizer:
    """A T5-style (SentencePiece unigram) tokenizer over TINY_WORDS plus printable characters."""
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    words = [("\u2581" + word, -1.0) for word in TINY_WORDS]
    characters = [(ch, -8.0) for ch in string.ascii_lowercase + string.digits + string.punctuation]
    vocab = specials + words + [("\u2581", -4.0)] + characters
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)


def umt5_encoder(vocab_size: int, *, seed: int = 0) -> UMT5EncoderModel:
    """Tiny stand-in for Wan's UMT5-XXL text encoder."""
    torch.manual_seed(seed)
    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=TINY_TEXT_WIDTH,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
    )
    return UMT5EncoderModel(config).eval()


def t5_encoder(vocab_size: int, *, seed: int = 0) -> T5EncoderModel:
    """Tiny stand-in for Stable Audio's T5-base text encoder."""
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=TINY_TEXT_WIDTH,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        dropout_rate=0.0,
    )
    return T5EncoderModel(config).eval()


#: Width 256 (4 heads x 64), 16 latent channels like the real Wan VAE. The width must stay well above a
#: patch's 1 x 2 x 2 x 16 = 64 values (the real model: 1536): the output LayerNorm removes each token's scale
#: and only spare width carries it through. Measured memorising one batch (fixed noise, 300 steps): width 64
#: stalls at 0.41, 128 at 0.16, 256 reaches 0.009 from 1.98.
WAN_TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=4,
    attention_head_dim=64,
    in_channels=16,
    out_channels=16,
    text_dim=TINY_TEXT_WIDTH,
    freq_dim=32,
    ffn_dim=512,
    num_layers=4,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=64,
)

#: Width 32 (4 heads x 8, 2 key/value heads); text width 16 and global width 32 as the projection model's.
STABLE_AUDIO_TRANSFORMER_CONFIG = dict(
    sample_size=256,
    in_channels=4,
    num_layers=4,
    attention_head_dim=8,
    num_attention_heads=4,
    num_key_value_attention_heads=2,
    out_channels=4,
    cross_attention_dim=16,
    time_proj_dim=16,
    global_states_input_dim=32,
    cross_attention_input_dim=16,
)


def wan_transformer(*, num_layers: int = 4, seed: int = 0) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    return WanTransformer3DModel(**{**WAN_TRANSFORMER_CONFIG, "num_layers": num_layers}).eval()


#: Same strides as the real Wan VAE: 4x in time, 8x in space.
WAN_VAE_CONFIG = dict(
    base_dim=4, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
)

#: Stereo, 4 latent channels (half the encoder width, as the real 128 -> 64), hop 2 * 4 = 8 samples
#: (the real one: 64 channels, hop 2048 at 44.1 kHz).
#: With the tiny DiT's 256-frame window that is 256 * 8 / 4000 = 0.512 s of audio per window.
OOBLECK_VAE_CONFIG = dict(
    encoder_hidden_size=8,
    downsampling_ratios=[2, 4],
    decoder_channels=6,
    decoder_input_channels=4,
    audio_channels=2,
    channel_multiples=[1, 2],
    sampling_rate=4_000,
)


def wan_vae(*, seed: int = 0) -> AutoencoderKLWan:
    torch.manual_seed(seed)
    return AutoencoderKLWan(**WAN_VAE_CONFIG).eval()


def wan_scheduler() -> UniPCMultistepScheduler:
    """Wan2.1-T2V-1.3B-Diffusers' scheduler settings (UniPC on flow sigmas, shift 3.0 for 480p)."""
    return UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        flow_shift=3.0,
        num_train_timesteps=1000,
        solver_order=2,
        solver_type="bh2",
        predict_x0=True,
        lower_order_final=True,
        final_sigmas_type="zero",
    )


def stable_audio_transformer(*, num_layers: int = 4, seed: int = 0) -> StableAudioDiTModel:
    torch.manual_seed(seed)
    return StableAudioDiTModel(**{**STABLE_AUDIO_TRANSFORMER_CONFIG, "num_layers": num_layers}).eval()


def stable_audio_projection(*, seed: int = 0) -> StableAudioProjectionModel:
    """Projects T5 states to the conditioning width and embeds seconds_start / seconds_total."""
    torch.manual_seed(seed)
    return StableAudioProjectionModel(
        text_encoder_dim=TINY_TEXT_WIDTH, conditioning_dim=16, min_value=0, max_value=512
    ).eval()


def oobleck_vae(*, sampling_rate: int = 4_000, seed: int = 0) -> AutoencoderOobleck:
    torch.manual_seed(seed)
    return AutoencoderOobleck(**{**OOBLECK_VAE_CONFIG, "sampling_rate": sampling_rate}).eval()


def stable_audio_scheduler() -> CosineDPMSolverMultistepScheduler:
    """stable-audio-open-1.0's scheduler settings (the class defaults: v-prediction, sigma 0.3..500)."""
    return CosineDPMSolverMultistepScheduler(
        sigma_min=0.3,
        sigma_max=500.0,
        sigma_data=1.0,
        sigma_schedule="exponential",
        solver_order=2,
        prediction_type="v_prediction",
        rho=7.0,
        solver_type="midpoint",
        lower_order_final=True,
        final_sigmas_type="zero",
    )


def wan_pipeline(*, num_layers: int = 4, seed: int = 0) -> WanPipeline:
    tok = tokenizer()
    return WanPipeline(
        tokenizer=tok,
        text_encoder=umt5_encoder(len(tok), seed=seed),
        vae=wan_vae(seed=seed),
        transformer=wan_transformer(num_layers=num_layers, seed=seed),
        scheduler=wan_scheduler(),
    )


def stable_audio_pipeline(*, num_layers: int = 4, sampling_rate: int = 4_000, seed: int = 0) -> StableAudioPipeline:
    tok = tokenizer()
    return StableAudioPipeline(
        tokenizer=tok,
        text_encoder=t5_encoder(len(tok), seed=seed),
        projection_model=stable_audio_projection(seed=seed),
        vae=oobleck_vae(sampling_rate=sampling_rate, seed=seed),
        transformer=stable_audio_transformer(num_layers=num_layers, seed=seed),
        scheduler=stable_audio_scheduler(),
    )


def bridgedit_pipeline(*, seed: int = 0, num_layers: int = 4):
    """A tiny, untrained (identity-bridge) BridgeDiTPipeline with small default sizes, for trying the CLI and API.

    Its output is noise-like: the weights are random. Save it with `.save_pretrained(folder)`.
    """
    from .config import BridgeConfig, ModelConfig, TrainableConfig
    from .pipeline import BridgeDiTPipeline

    config = ModelConfig(
        bridge=BridgeConfig(video_blocks=(0, 2), audio_blocks=(1, 2), width=16, num_heads=2, timestep_embed_dim=16),
        trainable=TrainableConfig(video_last_blocks=1, audio_last_blocks=1),
    )
    return BridgeDiTPipeline.from_pipes(
        wan_pipeline(num_layers=num_layers, seed=seed),
        stable_audio_pipeline(num_layers=num_layers, seed=seed + 1),
        config,
        generation_defaults=dict(height=64, width=64, num_frames=17, num_inference_steps=8),
    )


# ----------------------------------------------------------------------------------------------------
# A stand-in for the authors' released checkpoints (offline, seconds)
# ----------------------------------------------------------------------------------------------------

#: the stand-in's shape: 6-block towers, bridges after video blocks 1, 3 and audio blocks 0, 2, attention 32 wide
#: in 2 heads, the first 2 blocks of each tower trained (the release: 4 bridges, 1536 wide, 12 heads, 5 blocks)
STANDIN_DEPTH = 6
STANDIN_VIDEO_POINTS, STANDIN_AUDIO_POINTS = (1, 3), (0, 2)
STANDIN_WIDTH, STANDIN_HEADS, STANDIN_TRAINED_BLOCKS = 32, 2, 2


def _release_linear(state: dict, name: str, fan_in: int, fan_out: int, generator: torch.Generator, scale: float):
    state[f"{name}.weight"] = scale * torch.randn(fan_out, fan_in, generator=generator)
    state[f"{name}.bias"] = scale * torch.randn(fan_out, generator=generator)


def release_bridge_state(
    fusion: str, video_width: int, audio_width: int, width: int, generator: torch.Generator, mlp_ratio: int = 4
) -> dict[str, torch.Tensor]:
    """One bridge block's state_dict with the release's key names (1 = video, 2 = audio), random and non-zero."""
    state: dict[str, torch.Tensor] = {}
    chunks = 4 if fusion == "additive" else 6
    for stream, stream_width in ((1, video_width), (2, audio_width)):
        _release_linear(state, f"adaln_modulation_{stream}.1", stream_width, chunks * stream_width, generator, 0.1)
        _release_linear(state, f"mlp_{stream}.fc1", stream_width, mlp_ratio * stream_width, generator, 0.1)
        _release_linear(state, f"mlp_{stream}.fc2", mlp_ratio * stream_width, stream_width, generator, 0.1)
    if fusion == "additive":
        _release_linear(state, "video_to_audio_proj", video_width, audio_width, generator, 0.1)
        _release_linear(state, "audio_to_video_proj", audio_width, video_width, generator, 0.1)
        return state
    for stream, stream_width in ((1, video_width), (2, audio_width)):
        for projection in "qkv":
            _release_linear(state, f"attn.{projection}_proj_{stream}", stream_width, width, generator, 0.1)
        _release_linear(state, f"attn.o_proj_{stream}", width, stream_width, generator, 0.1)
    return state


def release_checkpoint(
    video_transformer: WanTransformer3DModel,
    audio_transformer: StableAudioDiTModel,
    *,
    fusion: str = "dca",
    seed: int = 0,
) -> dict:
    """A checkpoint in the release's layout for these towers (as its `on_save_checkpoint` writes one): their first
    STANDIN_TRAINED_BLOCKS blocks, changed, under diffusers' names, then the bridges' own state_dict under `N.`."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, model in (("blocks", video_transformer), ("transformer_blocks", audio_transformer)):
        for index in range(STANDIN_TRAINED_BLOCKS):
            for key, value in getattr(model, prefix)[index].state_dict().items():
                state[f"{prefix}.{index}.{key}"] = value + 0.05 * torch.randn(value.shape, generator=generator)
    video_width = video_transformer.config.num_attention_heads * video_transformer.config.attention_head_dim
    for index in range(len(STANDIN_VIDEO_POINTS)):
        bridge = release_bridge_state(fusion, video_width, audio_transformer.inner_dim, STANDIN_WIDTH, generator)
        state.update({f"{index}.{key}": value for key, value in bridge.items()})
    return {"state_dict": state, "epoch": 20, "global_step": 3318, "pytorch-lightning_version": "2.5.0"}


def write_release_standin(folder, *, fusion: str = "dca", seed: int = 0) -> dict[str, str]:
    """Tiny towers saved as WanPipeline / StableAudioPipeline folders and a release-layout checkpoint for them:
    what `bridgedit convert-official` reads, offline. Returns the paths written."""
    from pathlib import Path

    from .release import RELEASE_FUSION_NAMES

    folder = Path(folder)
    video, audio = (
        wan_pipeline(num_layers=STANDIN_DEPTH, seed=seed),
        stable_audio_pipeline(num_layers=STANDIN_DEPTH, seed=seed + 1),
    )
    video.save_pretrained(folder / "wan")
    audio.save_pretrained(folder / "stable-audio")
    checkpoint = folder / f"{RELEASE_FUSION_NAMES[fusion]}.ckpt"
    torch.save(release_checkpoint(video.transformer, audio.transformer, fusion=fusion, seed=seed), checkpoint)
    return {"video": str(folder / "wan"), "audio": str(folder / "stable-audio"), "checkpoint": str(checkpoint)}


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bridgedit.tiny", description="Write tiny offline stand-ins.")
    commands = parser.add_subparsers(dest="command", required=True)
    standin = commands.add_parser("release-standin", help="tiny towers and a checkpoint in the authors' release layout")
    standin.add_argument("out", metavar="DIR")
    standin.add_argument("--fusion", default="dca", choices=("dca", "full_attention", "v2a", "a2v", "additive"))
    standin.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_release_standin(args.out, fusion=args.fusion, seed=args.seed)
    print(
        f"wrote {paths['checkpoint']} (release layout, {args.fusion}) and the towers {paths['video']}, {paths['audio']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
