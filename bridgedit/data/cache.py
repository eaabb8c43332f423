"""`cache`: encode each prepared clip once (VAE latents and caption text states), so training never runs the
big encoders. One safetensors file per clip, written atomically; re-running skips finished clips; under
`accelerate launch` the clips are split across processes.

CACHE/info.json         the model and settings the cache was made with (training checks them)
CACHE/null.safetensors  video_text: Wan's encoding of "" (its null condition; Stable Audio's is zeros)
CACHE/clips/<id>.safetensors
    video_latents (C, F', H', W')  Wan VAE mean, normalised with the VAE's latents_mean / latents_std
    audio_latents (C, T)           Oobleck VAE mean of the mono clip duplicated to stereo (App. C.5)
    video_text (L_v, D), audio_text (L_a, C)   the captions T_V / T_A at their true token length
    shared_video_text, shared_audio_text       the shared caption, when the manifest has one
Text states are exactly those the pipelines' own `encode_prompt` produce (UMT5 states; Stable Audio's
projected T5 states), cut at the true length; `bridgedit.conditioning` pads them back at training time.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..atomic import atomic_path, remove_stale_temporaries, write_text_atomic
from ..config import ConfigError
from ..media import read_frames, read_wav
from .manifest import clip_files, load_manifest

logger = logging.getLogger(__name__)

INFO_NAME = "info.json"
NULL_NAME = "null.safetensors"
CLIPS_DIR = "clips"
FORMAT = "bridgedit.cache/1"


def _true_length(tokenizer, prompt: str, max_length: int) -> int:
    return int(sum(tokenizer(prompt, max_length=max_length, truncation=True).attention_mask))


@torch.no_grad()
def encode_video_text(pipe, prompt: str, max_sequence_length: int) -> torch.Tensor:
    """(L_true, D) UMT5 states, as WanPipeline.encode_prompt computes them."""
    states = pipe.video_pipe.encode_prompt(
        prompt=[prompt], do_classifier_free_guidance=False, max_sequence_length=max_sequence_length, device=pipe.device
    )[0]
    return states[0, : _true_length(pipe.video_pipe.tokenizer, prompt, max_sequence_length)].float().cpu()


@torch.no_grad()
def encode_audio_text(pipe, prompt: str) -> torch.Tensor:
    """(L_true, C) projected T5 states, as StableAudioPipeline.encode_prompt computes them."""
    tokenizer = pipe.audio_pipe.tokenizer
    states = pipe.audio_pipe.encode_prompt([prompt], pipe.device, do_classifier_free_guidance=False)
    return states[0, : _true_length(tokenizer, prompt, tokenizer.model_max_length)].float().cpu()


@torch.no_grad()
def encode_video(pipe, frames: np.ndarray) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (C, F', H', W') normalised Wan latents (the inverse of the pipeline's decoding)."""
    vae = pipe.video_pipe.vae
    pixels = (
        torch.from_numpy(frames).to(device=vae.device, dtype=vae.dtype).permute(3, 0, 1, 2)[None]
    )  # (1, 3, F, H, W)
    latents = vae.encode(pixels / 127.5 - 1.0).latent_dist.mode()
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents)
    std = torch.tensor(vae.config.latents_std).view(shape).to(latents)
    return ((latents - mean) / std)[0].float().cpu()


@torch.no_grad()
def encode_audio(pipe, audio: np.ndarray) -> torch.Tensor:
    """(1, samples) mono -> (C, T) Oobleck latents, T = ceil(samples / hop) (the audio is zero-padded to a hop multiple)."""
    vae = pipe.audio_pipe.vae
    hop = math.prod(vae.config.downsampling_ratios)
    waveform = torch.from_numpy(audio).to(device=vae.device, dtype=vae.dtype)
    waveform = waveform.expand(vae.config.audio_channels, -1)  # mono duplicated to stereo (App. C.5)
    waveform = torch.nn.functional.pad(waveform, (0, -waveform.shape[-1] % hop))[None]
    return vae.encode(waveform).latent_dist.mode()[0].float().cpu()


def model_identity(model: str | Path) -> str:
    """How a cache names the model it was made with: a local folder by its absolute path (the same folder named
    relative to another working directory, or absolutely, is the same model), anything else (a hub id) as given."""
    return str(Path(model).resolve()) if Path(model).exists() else str(model)


def cache_info(pipe, model: str | Path, max_sequence_length: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": model_identity(model),
        "video_max_tokens": max_sequence_length,
        "audio_max_tokens": int(pipe.audio_pipe.tokenizer.model_max_length),
        "sample_rate": pipe.sample_rate,
    }


def check_dataset_fits(pipe, records: list[dict[str, Any]]) -> None:
    """Raise a ConfigError naming what in the prepared clips the model cannot take."""
    strides = pipe.strides
    multiple = strides.video_spatial * max(strides.video_patch[1:])
    for record in records[:1] + records[-1:]:
        frames = round(record["duration"] * record["fps"])
        if (frames - 1) % strides.video_temporal:
            raise ConfigError(
                f"clips have {frames} frames; Wan needs 4k+1 (e.g. prepare with --seconds {(4 * 20 + 1) / record['fps']:g} "
                f"at {record['fps']:g} fps for 81 frames)"
            )
        if record["height"] % multiple or record["width"] % multiple:
            raise ConfigError(
                f"clips are {record['width']}x{record['height']}; the model needs multiples of {multiple}"
            )
        if record["sample_rate"] != pipe.sample_rate:
            raise ConfigError(
                f"clips' audio is at {record['sample_rate']} Hz; this model's audio VAE takes {pipe.sample_rate} Hz "
                f"(prepare with --sample-rate {pipe.sample_rate})"
            )


def _encode_clip(pipe, dataset: Path, record: dict[str, Any], max_sequence_length: int) -> dict[str, torch.Tensor]:
    video_path, audio_path = clip_files(dataset, record)
    audio, _ = read_wav(audio_path)
    tensors = {
        "video_latents": encode_video(pipe, read_frames(video_path)),
        "audio_latents": encode_audio(pipe, audio[:1]),
    }
    captions = record.get("captions") or {}
    if captions.get("video"):
        tensors["video_text"] = encode_video_text(pipe, captions["video"], max_sequence_length)
    if captions.get("audio"):
        tensors["audio_text"] = encode_audio_text(pipe, captions["audio"])
    if captions.get("shared"):
        tensors["shared_video_text"] = encode_video_text(pipe, captions["shared"], max_sequence_length)
        tensors["shared_audio_text"] = encode_audio_text(pipe, captions["shared"])
    return tensors


def cache_dataset(
    pipe,
    dataset: str | Path,
    out: str | Path,
    *,
    model: str,
    state=None,
    max_sequence_length: int = 512,
    progress: bool = True,
) -> int:
    """Encode every clip of the manifest (all splits) not cached yet; returns how many this process encoded."""
    from accelerate import PartialState

    state = state or PartialState()
    dataset, out = Path(dataset), Path(out)
    records = load_manifest(dataset)
    check_dataset_fits(pipe, records)
    info = cache_info(pipe, model, max_sequence_length)
    if state.is_main_process:
        (out / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out / CLIPS_DIR)  # a run killed mid-write: its unfinished clips are encoded again
        remove_stale_temporaries(out)
        if (out / INFO_NAME).is_file():
            previous = json.loads((out / INFO_NAME).read_text())
            # a cache made before models were named by absolute path: its relative path, from this directory
            previous["model"] = model_identity(previous["model"])
            if previous != info:
                raise ConfigError(f"{out} holds a cache made with other settings ({previous}); use a new --out folder")
        else:
            write_text_atomic(out / INFO_NAME, json.dumps(info, indent=2))
        if not (out / NULL_NAME).is_file():
            with atomic_path(out / NULL_NAME) as temporary:
                save_file({"video_text": encode_video_text(pipe, "", max_sequence_length)}, str(temporary))
    state.wait_for_everyone()

    pending = [r for r in records if not (out / CLIPS_DIR / f"{r['id']}.safetensors").is_file()]
    state.wait_for_everyone()  # every process lists the pending clips before any writes
    encoded = 0
    with state.split_between_processes(pending) as mine:
        for record in tqdm(mine, desc=f"cache (process {state.process_index})", disable=not progress):
            tensors = _encode_clip(pipe, dataset, record, max_sequence_length)
            with atomic_path(out / CLIPS_DIR / f"{record['id']}.safetensors") as temporary:
                save_file(
                    {k: v.contiguous() for k, v in tensors.items()},
                    str(temporary),
                    metadata={"seconds": str(record["duration"])},
                )
            encoded += 1
    state.wait_for_everyone()
    return encoded


def load_cached_clip(cache: str | Path, clip_id: str) -> dict[str, torch.Tensor]:
    path = Path(cache) / CLIPS_DIR / f"{clip_id}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"clip {clip_id!r} is not in the cache {cache} (run bridgedit cache)")
    return load_file(str(path))


def load_cache_info(cache: str | Path) -> dict[str, Any]:
    path = Path(cache) / INFO_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{cache} is not a bridgedit cache: {INFO_NAME} is missing (run bridgedit cache)")
    return json.loads(path.read_text())
