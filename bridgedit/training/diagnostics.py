"""Does a trained model use the other stream? The cross-modal gain of its bridges.

For a batch of clips, each stream's denoising loss (Eq. 5 for audio, Eq. 6 for video) at fixed noise levels of that
stream, with the *other* stream given clean (its timestep 0) and either matching (the same clip) or mismatched (the
batch rolled by one: another clip's latents). The gain is mismatched minus matched loss: exactly 0 for a model that
ignores the other stream (fusion "none", or bridges whose gates never opened), positive when the bridges carry
information that helps denoise this clip. Unlike a sync score of generated clips, it needs no sampling and no
detector, so it shows early whether bridge training is learning anything at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..data.dataset import CachedBatch
from ..diffusion.objectives import (
    audio_target,
    couple_timesteps,
    noise_audio,
    noise_video,
    video_target,
)

#: noise levels t in [0, 1] (t_A = t, t_V = 1000 t) where the gain is measured: from half noise to nearly pure noise,
#: where a stream's own input says least about its content
NOISE_LEVELS = (0.5, 0.7, 0.85, 0.95)


@torch.no_grad()
def cross_modal_gain(
    model,
    batch: CachedBatch,
    conditions,
    *,
    noise_levels=NOISE_LEVELS,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """{"audio"|"video": {"levels": [{"t", "matched", "mismatched", "gain"}...], "mean_gain", "mean_relative_gain"}}.

    `model` is a BridgeDiT (called as in training); `conditions` the batch's tower conditions without caption drops
    (`bridgedit.training.trainer.batch_conditions`). Needs at least two clips (one to mismatch the other).
    """
    x_video, x_audio = batch.video_latents.to(device), batch.audio_latents.to(device)
    size = x_video.shape[0]
    if size < 2:
        raise ValueError("the cross-modal gain needs a batch of at least 2 clips (it pairs each clip with another)")
    other = torch.roll(torch.arange(size), 1)  # clip i is given clip i-1's other stream
    generator = torch.Generator().manual_seed(seed)
    noise_v = torch.randn(x_video.shape, generator=generator).to(device)
    noise_a = torch.randn(x_audio.shape, generator=generator).to(device)
    clean = torch.zeros(size, device=device)
    result: dict[str, Any] = {"audio": {"levels": []}, "video": {"levels": []}}
    for level in noise_levels:
        t_audio = torch.full((size,), float(level), device=device)
        t_video = couple_timesteps(t_audio)
        audio_in, video_in = noise_audio(x_audio, noise_a, t_audio), noise_video(x_video, noise_v, t_video)
        audio_losses = [  # audio denoised next to clean video: the matching clip's, then another clip's
            F.mse_loss(
                model(video, audio_in, clean, t_audio, *conditions)[1].float(), audio_target(x_audio, noise_a, t_audio)
            ).item()
            for video in (x_video, x_video[other])
        ]
        video_losses = [  # video denoised next to clean audio
            F.mse_loss(
                model(video_in, audio, t_video, clean, *conditions)[0].float(), video_target(x_video, noise_v)
            ).item()
            for audio in (x_audio, x_audio[other])
        ]
        for stream, (matched, mismatched) in (("audio", audio_losses), ("video", video_losses)):
            result[stream]["levels"].append(
                {"t": float(level), "matched": matched, "mismatched": mismatched, "gain": mismatched - matched}
            )
    for stream in ("audio", "video"):
        levels = result[stream]["levels"]
        result[stream]["mean_gain"] = sum(entry["gain"] for entry in levels) / len(levels)
        result[stream]["mean_relative_gain"] = sum(entry["gain"] / entry["mismatched"] for entry in levels) / len(
            levels
        )
    return result


def cross_modal_gain_on_cache(
    model: str | Path,
    dataset: str | Path,
    cache: str | Path,
    *,
    split: str = "test",
    captions: str = "hvgc",
    max_clips: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """`cross_modal_gain` of a saved model or training checkpoint on (up to `max_clips` of) a split's cached clips,
    all in one batch, with no caption dropped."""
    from ..data.cache import load_cache_info
    from ..data.dataset import CachedClips
    from ..pipeline import BridgeDiTPipeline
    from .trainer import batch_conditions

    pipe = BridgeDiTPipeline.from_pretrained(model, dtype=torch.float32)  # a float16 model folder too
    clips = CachedClips(dataset, cache, split=split, captions=captions)
    size = min(len(clips), max_clips)
    batch = clips.batch(list(range(size)))
    keep = torch.zeros(size, dtype=torch.bool)
    conditions = batch_conditions(pipe, batch, keep, keep, clips.null_video_text, load_cache_info(cache), pipe.device)
    return cross_modal_gain(pipe.model.eval(), batch, conditions, seed=seed, device=pipe.device)
