"""Score a model on the synthetic world's held-out clips: generate from each clip's captions and measure sync
(this world's event-level score and AV-Align) and text faithfulness (colour, shape, material)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..evaluation.av_align import av_align
from .detect import sync_score
from .faithfulness import faithfulness

SCORES = ("sync", "av_align", "colour", "shape", "material")
#: the first generation seed for held-out clips in the benchmarks (clip i: HELD_OUT_SEED + i), apart from any
#: training seed
HELD_OUT_SEED = 10_000


def prompts_for(record: dict[str, Any], captions: str) -> dict[str, str]:
    """The pipeline's prompt arguments for a clip: its T_V and T_A ("hvgc"), or its shared caption for both."""
    if captions == "shared":
        return {"prompt": record["captions"]["shared"]}
    return {"video_prompt": record["captions"]["video"], "audio_prompt": record["captions"]["audio"]}


def score_clip(frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int, scene: dict[str, Any]) -> dict[str, float]:
    """frames (F, H, W, 3) uint8, audio (channels, samples): every score of one generated clip."""
    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
    scores = {"sync": sync_score(frames, fps, mono, sample_rate), "av_align": av_align(frames, fps, mono, sample_rate)}
    scores.update({k: float(v) for k, v in faithfulness(frames, mono, sample_rate, scene).items()})
    return scores


@torch.no_grad()
def generate_for(pipe, records: list[dict[str, Any]], *, captions: str = "hvgc", seed: int = 0, batch_size: int = 16,
                 **call_kwargs):
    """Yield (record, frames (F, H, W, 3) uint8, audio (channels, samples), fps, sample rate): the sample generated
    from each record's captions (clip i uses seed `seed + i`). `call_kwargs` override the model's own generation
    defaults (size, steps, guidance)."""
    settings = {**pipe.generation_defaults, **call_kwargs}
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        prompts = [prompts_for(record, captions) for record in chunk]
        arguments = {key: [p[key] for p in prompts] for key in prompts[0]}
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        output = pipe(**arguments, generator=generators, output_type="np", progress=False, **settings)
        for index, record in enumerate(chunk):
            yield record, output.video[index], output.audio[index], output.fps, output.sample_rate


def score_model(pipe, records: list[dict[str, Any]], *, captions: str = "hvgc", seed: int = 0, batch_size: int = 16,
                **call_kwargs) -> list[dict[str, float]]:
    """Per clip: the scores of the sample generated from its captions (`generate_for`)."""
    return [score_clip(frames, audio, fps, rate, record["scene"])
            for record, frames, audio, fps, rate in generate_for(pipe, records, captions=captions, seed=seed,
                                                                 batch_size=batch_size, **call_kwargs)]


@torch.no_grad()
def score_references(pipe, dataset, records: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Upper bounds for generated clips, per clip: the real clips ("real") and the real clips passed through the
    model's own codecs ("codec": encode as the cache does, decode as the pipeline does)."""
    from ..data.cache import encode_audio, encode_video
    from ..data.manifest import clip_files
    from ..media import read_frames, read_wav

    real, codec = [], []
    for record in records:
        video_path, audio_path = clip_files(dataset, record)
        frames = read_frames(video_path)
        audio, rate = read_wav(audio_path)
        real.append(score_clip(frames, audio, record["fps"], rate, record["scene"]))
        decoded_frames = pipe.decode_video(encode_video(pipe, frames)[None])[0]
        decoded_audio = pipe.decode_audio(encode_audio(pipe, audio[:1])[None], audio.shape[-1] / rate)[0]
        codec.append(score_clip(decoded_frames, decoded_audio, record["fps"], rate, record["scene"]))
    return {"real": real, "codec": codec}


def summarize_scores(per_clip: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each score over clips."""
    return {name: float(np.mean([clip[name] for clip in per_clip])) for name in SCORES}
