"""Score a model on the synthetic world's held-out clips: generate from each clip's captions and measure sync
(this world's event-level score and AV-Align) and text faithfulness (colour, shape, material)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..evaluation.av_align import av_align, intersection_over_union
from .detect import audio_events, sync_score, video_events
from .faithfulness import faithfulness

SCORES = ("sync", "av_align", "colour", "shape", "material")
#: one stream generated next to the other stream of a real clip, held clean: what is generated -> which real stream
#: is given (`score_next_to_real`)
NEXT_TO_REAL = {"audio for the real video": "video", "video for the real audio": "audio"}
#: the first generation seed for held-out clips in the benchmarks (clip i: HELD_OUT_SEED + i), apart from any
#: training seed
HELD_OUT_SEED = 10_000


def prompts_for(record: dict[str, Any], captions: str) -> dict[str, str]:
    """The pipeline's prompt arguments for a clip: its T_V and T_A ("hvgc"), or its shared caption for both."""
    if captions == "shared":
        return {"prompt": record["captions"]["shared"]}
    return {"video_prompt": record["captions"]["video"], "audio_prompt": record["captions"]["audio"]}


def score_clip(
    frames: np.ndarray, audio: np.ndarray, fps: float, sample_rate: int, scene: dict[str, Any]
) -> dict[str, float]:
    """frames (F, H, W, 3) uint8, audio (channels, samples): every score of one generated clip."""
    mono = np.asarray(audio, dtype=np.float32).mean(axis=0)
    scores = {"sync": sync_score(frames, fps, mono, sample_rate), "av_align": av_align(frames, fps, mono, sample_rate)}
    scores.update({k: float(v) for k, v in faithfulness(frames, mono, sample_rate, scene).items()})
    return scores


@torch.no_grad()
def generate_for(
    pipe,
    records: list[dict[str, Any]],
    *,
    captions: str = "hvgc",
    seed: int = 0,
    batch_size: int = 16,
    given: str | None = None,
    given_latents: list[torch.Tensor] | None = None,
    **call_kwargs,
):
    """Yield (record, frames (F, H, W, 3) uint8, audio (channels, samples), fps, sample rate): the sample generated
    from each record's captions (clip i uses seed `seed + i`). With `given` ("video" or "audio") and one clean latent
    per record (`real_latents`), only the other stream is generated, next to those latents (the given stream comes
    back decoded). `call_kwargs` override the model's own generation defaults (size, steps, guidance)."""
    if (given is None) != (given_latents is None) or given not in (None, "video", "audio"):
        raise ValueError("give both `given` ('video' or 'audio') and `given_latents`, or neither")
    settings = {**pipe.generation_defaults, **call_kwargs}
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        prompts = [prompts_for(record, captions) for record in chunk]
        arguments = {key: [p[key] for p in prompts] for key in prompts[0]}
        if given is not None:
            arguments[f"given_{given}_latents"] = torch.stack(given_latents[start : start + len(chunk)])
        generators = [torch.Generator().manual_seed(seed + start + i) for i in range(len(chunk))]
        output = pipe(**arguments, generator=generators, output_type="np", progress=False, **settings)
        for index, record in enumerate(chunk):
            yield record, output.video[index], output.audio[index], output.fps, output.sample_rate


def real_clips(dataset, records: list[dict[str, Any]]):
    """Yield (frames (F, H, W, 3) uint8, audio (channels, samples), sample rate): each record's clip as written."""
    from ..data.manifest import clip_files
    from ..media import read_frames, read_wav

    for record in records:
        video_path, audio_path = clip_files(dataset, record)
        audio, rate = read_wav(audio_path)
        yield read_frames(video_path), audio, rate


@torch.no_grad()
def real_latents(pipe, dataset, records: list[dict[str, Any]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each record's clip through the model's own codecs, as the cache encodes it: (video latents (C, F', H', W'),
    audio latents (C_a, T)) per record."""
    from ..data.cache import encode_audio, encode_video

    video, audio = [], []
    for frames, sound, _ in real_clips(dataset, records):
        video.append(encode_video(pipe, frames))
        audio.append(encode_audio(pipe, sound[:1]))
    return video, audio


def event_statistics(clips: list[tuple[np.ndarray, np.ndarray, float, int]]) -> dict[str, Any]:
    """clips: (frames (F, H, W, 3), mono audio, fps, sample rate) -> mean detected events per clip in each stream, the
    sync score per clip and its mean, and that score's chance level two ways: each clip's frames scored against the
    next clip's audio, and against every other clip's audio (per clip: the mean over the other clips' audio; and the
    mean of that), and the sync score minus that chance level ("sync_above_chance")."""
    video = [video_events(frames, fps) for frames, _, fps, _ in clips]
    audio = [audio_events(sound, rate) for _, sound, _, rate in clips]
    fps = [clip[2] for clip in clips]
    per_clip = [intersection_over_union(audio[i], video[i], fps[i]) for i in range(len(clips))]
    others = [
        [intersection_over_union(audio[j], video[i], fps[i]) for j in range(len(clips)) if j != i]
        for i in range(len(clips))
    ]
    chance_per_clip = [float(np.mean(row)) if row else float("nan") for row in others]
    return {
        "video_events": float(np.mean([len(v) for v in video])),
        "audio_events": float(np.mean([len(a) for a in audio])),
        "sync": float(np.mean(per_clip)),
        "sync_per_clip": [float(x) for x in per_clip],
        "sync_with_another_clips_audio": float(np.mean([row[i % len(row)] for i, row in enumerate(others)]))
        if len(clips) > 1
        else float("nan"),
        "sync_chance": float(np.mean(chance_per_clip)),
        "sync_chance_per_clip": chance_per_clip,
        "sync_above_chance": float(np.mean(per_clip) - np.mean(chance_per_clip)),
    }


@torch.no_grad()
def score_next_to_real(
    pipe,
    dataset,
    records: list[dict[str, Any]],
    *,
    seed: int = HELD_OUT_SEED,
    captions: str = "hvgc",
    directions: tuple[str, ...] = tuple(NEXT_TO_REAL),
    **call_kwargs,
) -> dict[str, dict[str, Any]]:
    """Per direction (a key of NEXT_TO_REAL): `event_statistics` of (real frames, generated audio) or (generated
    frames, real audio) pairs, plus "sync_above_chance"; the model is prompted with each clip's T_V and T_A ("hvgc")
    or its shared caption ("shared"), clip i with seed `seed + i`; `call_kwargs` override its generation defaults (as
    `generate_for`: e.g. audio_guidance). Only in distribution for bridges trained with each stream's noise level
    drawn on its own: a clean stream next to a noisy one is then a pair seen in training."""
    real = [(frames, sound.mean(axis=0), rate) for frames, sound, rate in real_clips(dataset, records)]
    latents = dict(zip(("video", "audio"), real_latents(pipe, dataset, records)))
    rows = {}
    for direction in directions:
        given = NEXT_TO_REAL[direction]
        pairs = []
        for (_, frames, audio, fps, rate), (real_frames, real_audio, real_rate) in zip(
            generate_for(
                pipe, records, captions=captions, seed=seed, given=given, given_latents=latents[given], **call_kwargs
            ),
            real,
        ):
            if given == "video":
                pairs.append((real_frames, audio.mean(axis=0), fps, rate))
            else:
                pairs.append((frames, real_audio, fps, real_rate))
        rows[direction] = event_statistics(pairs)
    return rows


def sync_above_chance_per_clip(statistics: dict[str, Any]) -> np.ndarray:
    """Per clip: the event-level sync minus its chance level, from `event_statistics`' per-clip lists."""
    return np.asarray(statistics["sync_per_clip"]) - np.asarray(statistics["sync_chance_per_clip"])


def paired_lead(runs: list[dict[str, Any]], baseline_runs: list[dict[str, Any]], direction: str) -> dict[str, float]:
    """How far a variant's sync is above a baseline's, clip by clip, in `score_next_to_real` results: (sync - chance)
    of the variant's i-th run minus that of the baseline's i-th run on the same clip (same real stream, same generation
    seed), pooled over runs; mean, standard error, and the one-sided paired t-test's p-value (scipy.stats.ttest_rel).
    Needs at least as many baseline runs as variant runs."""
    from scipy.stats import ttest_rel

    if len(baseline_runs) < len(runs):
        raise ValueError(
            f"a paired comparison needs as many baseline runs as variant runs ({len(runs)}), got {len(baseline_runs)}"
        )

    ours = np.concatenate([sync_above_chance_per_clip(run[direction]) for run in runs])
    theirs = np.concatenate([sync_above_chance_per_clip(run[direction]) for run in baseline_runs[: len(runs)]])
    if len(ours) != len(theirs):
        raise ValueError("a paired comparison needs the same clips in the variant's and the baseline's runs")
    differences = ours - theirs
    return {
        "mean": float(differences.mean()),
        "standard_error": float(differences.std(ddof=1) / np.sqrt(len(differences))),
        "p_value": float(ttest_rel(ours, theirs, alternative="greater").pvalue),
        "pairs": len(differences),
    }


def score_model(
    pipe, records: list[dict[str, Any]], *, captions: str = "hvgc", seed: int = 0, batch_size: int = 16, **call_kwargs
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """The samples generated from the records' captions (`generate_for`): per clip, their scores (`score_clip`); and
    their `event_statistics`, the event-level sync next to its chance level (each clip's frames against every other
    clip's audio)."""
    samples = list(generate_for(pipe, records, captions=captions, seed=seed, batch_size=batch_size, **call_kwargs))
    per_clip = [score_clip(frames, audio, fps, rate, record["scene"]) for record, frames, audio, fps, rate in samples]
    statistics = event_statistics([(frames, audio.mean(axis=0), fps, rate) for _, frames, audio, fps, rate in samples])
    return per_clip, statistics


@torch.no_grad()
def score_references(pipe, dataset, records: list[dict[str, Any]]) -> dict[str, list[dict[str, float]]]:
    """Upper bounds for generated clips, per clip: the real clips ("real") and the real clips passed through the
    model's own codecs ("codec": encode as the cache does, decode as the pipeline does)."""
    from ..data.cache import encode_audio, encode_video

    real, codec = [], []
    for record, (frames, audio, rate) in zip(records, real_clips(dataset, records)):
        real.append(score_clip(frames, audio, record["fps"], rate, record["scene"]))
        decoded_frames = pipe.decode_video(encode_video(pipe, frames)[None])[0]
        decoded_audio = pipe.decode_audio(encode_audio(pipe, audio[:1])[None], audio.shape[-1] / rate)[0]
        codec.append(score_clip(decoded_frames, decoded_audio, record["fps"], rate, record["scene"]))
    return {"real": real, "codec": codec}


def summarize_scores(per_clip: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each score over clips."""
    return {name: float(np.mean([clip[name] for clip in per_clip])) for name in SCORES}
