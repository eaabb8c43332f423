"""Sizes, parameters and FLOPs of a preset's BridgeDiT, measured on the meta device (no weights needed).

FLOPs are PyTorch's `FlopCounterMode` count (matmuls, convolutions and attention; 2 FLOPs per
multiply-add) for one joint forward at batch 1 with the conditional pass only, attributed to the
module that ran them. Elementwise work (norms, activations, rotary) is not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import ModelConfig, SequenceLengths
from .presets import Preset, build_on_meta
from .towers import AudioConditions, VideoConditions

# FlopCounterMode names modules by their path from the root module, prefixed with its class name
_ROOT = "BridgeDiT"


@dataclass(frozen=True)
class Description:
    preset: str
    fusion: str
    video_repo: str
    audio_repo: str
    clip: dict[str, Any]
    bridge: dict[str, Any]  # the BridgeConfig described
    lengths: SequenceLengths
    parameters: dict[str, int]
    flops: dict[str, int]

    @property
    def bridge_flop_share(self) -> float:
        """Bridge FLOPs as a fraction of the two towers' FLOPs."""
        return self.flops["bridges"] / (self.flops["video_tower"] + self.flops["audio_tower"])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bridge_flop_share"] = self.bridge_flop_share
        return data


def _flops_under(counts: dict[str, dict[Any, int]], prefix: str) -> int:
    """Sum the outermost counted modules under `prefix` (each module's count includes its children)."""
    names = [name for name in counts if name.startswith(prefix + ".")]
    outermost = [n for n in names if not any(n.startswith(other + ".") for other in names if other != n)]
    return sum(sum(counts[n].values()) for n in outermost)


def meta_inputs(preset: Preset, lengths: SequenceLengths) -> tuple:
    """One joint forward's inputs (batch 1) as meta tensors: shapes only."""
    video_config, audio_config = preset.video_transformer, preset.audio_transformer
    with torch.device("meta"):
        video_latents = torch.empty(
            1, video_config["in_channels"], lengths.latent_frames, lengths.latent_height, lengths.latent_width
        )
        audio_latents = torch.empty(1, audio_config["in_channels"], lengths.audio_latent_length)
        t_video, t_audio = torch.full((1,), 500.0), torch.full((1,), 0.5)
        video_conditions = VideoConditions(torch.empty(1, preset.video_text_tokens, video_config["text_dim"]))
        audio_conditions = AudioConditions(
            # T5 states then the seconds_start / seconds_total tokens, as StableAudioPipeline builds them
            text_states=torch.empty(1, preset.audio_text_tokens + 2, audio_config["cross_attention_input_dim"]),
            global_states=torch.empty(1, 1, audio_config["global_states_input_dim"]),
        )
    return video_latents, audio_latents, t_video, t_audio, video_conditions, audio_conditions


def describe(preset: Preset, fusion: str | None = None) -> Description:
    model_config = preset.model
    if fusion is not None:
        model_config = ModelConfig(bridge=replace(model_config.bridge, fusion=fusion), trainable=model_config.trainable)
    model = build_on_meta(preset, model_config).eval()
    lengths = preset.lengths()

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*meta_inputs(preset, lengths))
    counts = counter.get_flop_counts()
    flops = {
        "total": counter.get_total_flops(),
        "video_tower": _flops_under(counts, f"{_ROOT}.video_tower"),
        "audio_tower": _flops_under(counts, f"{_ROOT}.audio_tower"),
        "bridges": _flops_under(counts, f"{_ROOT}.bridges"),
    }
    return Description(
        preset=preset.name,
        fusion=model_config.bridge.fusion,
        video_repo=preset.video_repo,
        audio_repo=preset.audio_repo,
        clip=asdict(preset.clip) | {"seconds": preset.clip.seconds},
        bridge=asdict(model_config.bridge),
        lengths=lengths,
        parameters=model.parameter_counts(),
        flops=flops,
    )


def format_description(desc: Description) -> str:
    def millions(n: int) -> str:
        return f"{n / 1e6:,.1f} M"

    def tera(n: int) -> str:
        return f"{n / 1e12:,.3f} TFLOP"

    clip, lengths, params, flops = desc.clip, desc.lengths, desc.parameters, desc.flops
    lines = [
        f"preset   {desc.preset}   (fusion: {desc.fusion})",
        f"towers   video {desc.video_repo}",
        f"         audio {desc.audio_repo}",
        "",
        f"clip     {clip['width']}x{clip['height']}, {clip['num_frames']} frames at {clip['fps']:g} fps; "
        f"audio {clip['seconds']:g} s at {clip['audio_sample_rate']} Hz",
        f"tokens   video {lengths.video_tokens:,} = {' x '.join(map(str, lengths.video_grid))} "
        f"(latent {lengths.latent_frames} x {lengths.latent_height} x {lengths.latent_width})",
        f"         audio {lengths.audio_tokens:,} (+1 global/time token"
        f"{', which the bridges read too' if desc.bridge['audio_global_token'] else ''})",
        "",
        "parameters",
        f"  video tower   {millions(params['video_tower']):>12}",
        f"  audio tower   {millions(params['audio_tower']):>12}",
        f"  bridges       {millions(params['bridges']):>12}",
        f"  trainable     {millions(params['trainable']):>12}",
        "",
        "FLOPs of one joint forward (batch 1, conditional pass)",
        f"  video tower   {tera(flops['video_tower']):>16}",
        f"  audio tower   {tera(flops['audio_tower']):>16}",
        f"  bridges       {tera(flops['bridges']):>16}   ({100 * desc.bridge_flop_share:.2f} % of the towers)",
        f"  total         {tera(flops['total']):>16}",
    ]
    return "\n".join(lines)
