"""Why does the demo model sound lamp flashes on time but not bounces (issue #46)? Measure it, do not guess.

    python experiments/synthetic/bounce_diagnosis.py [--model DIR] [--world DIR]    # about 10 minutes on 2 cores

On the world's 32 held-out clips (made again from the model's recipe), split by kind (lamp, bouncing object):

1. codec: the real video through the model's video codec (encode, decode), its events found by the detector, against
   the clip's true event times. Is an impact still visible in what the towers see?
2. audio next to the real video (held clean, the model's own sampling), its onsets against the clip's true event
   times: the hit rate (a true event with an onset within one frame) and the permutation baseline (the same onsets
   against every other clip of that kind's event times), at the model's audio guidance, without audio guidance
   (w_a = 1: does the text overrule the bridges?), and with the bridges off (the same towers, fusion "none").
3. the video's pull: each clip's audio made again, same caption and seed, next to another clip's real video of the
   same kind: the share of its onsets within one frame of the first one's. 1 means the video changes nothing.
4. what a bridge reads: the video tokens where the first bridge reads them (after video block 1, clean latents of
   96 training clips), and how much of each token's place a linear map recovers from them (R^2 on 32 clips held
   apart): its row, its column, its latent frame. The towers' rotary positions never reach the hidden states.

Writes experiments/synthetic/results/bounce_diagnosis.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bridgedit.atomic import write_text_atomic
from bridgedit.config import BridgeConfig, ModelConfig
from bridgedit.data.manifest import load_manifest
from bridgedit.generation import BUNDLED_MODEL
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic.detect import audio_events, video_events
from bridgedit.synthetic.recipe import model_world
from bridgedit.synthetic.scoring import HELD_OUT_SEED, generate_for, real_latents
from bridgedit.synthetic.world import LAMP

RESULTS = Path(__file__).parent / "results"


def hits(onsets: list[float], events: list[float], tolerance: float) -> float:
    """The share of `events` with an onset within `tolerance` seconds (nan without events)."""
    if not events:
        return float("nan")
    return float(np.mean([any(abs(onset - event) <= tolerance for onset in onsets) for event in events]))


def hit_rates(onsets: list[list[float]], events: list[list[float]], kinds: list[str], fps: float) -> dict:
    """Per kind: the mean hit rate of each clip's onsets against its own events and against every other clip's of that
    kind (the permutation baseline), and the lead of the first over the second."""
    table = {}
    for kind in sorted(set(kinds)):
        members = [i for i, k in enumerate(kinds) if k == kind]
        own = [hits(onsets[i], events[i], 1 / fps) for i in members]
        permuted = [np.nanmean([hits(onsets[i], events[j], 1 / fps) for j in members if j != i]) for i in members]
        table[kind] = {
            "clips": len(members),
            "hit_rate": float(np.nanmean(own)),
            "permutation": float(np.nanmean(permuted)),
            "lead": float(np.nanmean(own) - np.nanmean(permuted)),
            "onsets_per_clip": float(np.mean([len(onsets[i]) for i in members])),
            "events_per_clip": float(np.mean([len(events[i]) for i in members])),
        }
    return table


def audio_next_to(pipe, records, video_latents, **call) -> list[list[float]]:
    """Onsets of the audio generated next to each given video latent (record i's captions, seed HELD_OUT_SEED + i)."""
    samples = generate_for(pipe, records, seed=HELD_OUT_SEED, given="video", given_latents=video_latents, **call)
    return [audio_events(audio.mean(axis=0), rate) for _, _, audio, _, rate in samples]


def agreement(first: list[list[float]], second: list[list[float]], fps: float) -> float:
    """The mean share of onsets in `second` within one frame of one in `first`, clip by clip."""
    return float(np.nanmean([hits(a, b, 1 / fps) for a, b in zip(first, second)]))


def position_probe(pipe, latents: list[torch.Tensor], train: int) -> dict[str, float]:
    """R^2 of least squares from each video token's hidden state at the first bridge point to its row, column and
    latent frame, fitted on the first `train` clips' tokens and scored on the rest."""
    tower, block = pipe.model.video_tower, pipe.model.config.bridge.video_blocks[0]
    conditions = pipe.encode_prompts([""], [""], audio_seconds=1.0, max_sequence_length=16).video
    features, places = [], []
    for latent in latents:
        state = tower.prepare(latent[None], torch.tensor([0.0]), conditions)
        for index in range(block + 1):
            tower.run_block(index, state)
        frames, rows, columns = state.grid
        token = np.arange(frames * rows * columns)
        features.append(state.bridge_tokens[0].float().numpy())  # (N, D), N = frames x rows x columns
        places.append(np.stack([token // columns % rows, token % columns, token // (rows * columns)], axis=1))
    x = np.concatenate([np.concatenate(features), np.ones((sum(len(f) for f in features), 1))], axis=1)
    y, cut = np.concatenate(places).astype(float), train * len(features[0])
    weights, *_ = np.linalg.lstsq(x[:cut], y[:cut], rcond=None)
    residual = ((y[cut:] - x[cut:] @ weights) ** 2).sum(axis=0)
    total = ((y[cut:] - y[cut:].mean(axis=0)) ** 2).sum(axis=0)
    return dict(zip(("row", "column", "frame"), (1 - residual / total).tolist()))


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL))
    parser.add_argument("--world", type=Path, help="a world made before by the recipe or a benchmark (its dataset)")
    parser.add_argument("--results-name", default="bounce_diagnosis", help="writes results/NAME.json")
    args = parser.parse_args()
    started = time.perf_counter()
    pipe = BridgeDiTPipeline.from_pretrained(args.model, dtype=torch.float32)
    with model_world(args.model, args.world) as dataset:
        records = load_manifest(dataset, split="test")
        video_latents, _ = real_latents(pipe, dataset, records)
        training, _ = real_latents(pipe, dataset, load_manifest(dataset, split="train")[:96])
    fps = float(records[0]["fps"])
    kinds = ["lamp" if record["scene"]["shape"] == LAMP else "bounce" for record in records]
    events = [list(record["events"]) for record in records]

    decoded = [pipe.decode_video(latent[None], "np")[0] for latent in video_latents]
    rows = {"codec: detected events": hit_rates([video_events(f, fps) for f in decoded], events, kinds, fps)}
    own_guidance = pipe.generation_defaults.get("audio_guidance", 7.0)
    onsets = audio_next_to(pipe, records, video_latents)
    rows[f"audio next to the video, w_a {own_guidance:g}"] = hit_rates(onsets, events, kinds, fps)
    rows["audio next to the video, w_a 1"] = hit_rates(
        audio_next_to(pipe, records, video_latents, audio_guidance=1.0), events, kinds, fps
    )
    off = BridgeDiTPipeline.from_pipes(
        pipe.video_pipe,
        pipe.audio_pipe,
        ModelConfig(bridge=BridgeConfig(fusion="none"), trainable=pipe.model.config.trainable),
        generation_defaults=pipe.generation_defaults,
    )
    rows["bridges off"] = hit_rates(audio_next_to(off, records, video_latents), events, kinds, fps)

    # the same captions and seeds, next to the next clip of the same kind's video
    members = {kind: [i for i, k in enumerate(kinds) if k == kind] for kind in set(kinds)}
    other = [members[k][(members[k].index(i) + 1) % len(members[k])] for i, k in enumerate(kinds)]
    swapped = audio_next_to(pipe, records, [video_latents[j] for j in other])
    pull = {
        kind: agreement([onsets[i] for i in range(len(kinds)) if kinds[i] == kind],
                        [swapped[i] for i in range(len(kinds)) if kinds[i] == kind], fps)
        for kind in sorted(set(kinds))
    }  # fmt: skip
    rows["another clip's video: onsets kept"] = {kind: {"share": share} for kind, share in pull.items()}
    probe = position_probe(pipe, training, train=64)

    print(f"{'':<42}{'kind':<8}{'hit rate':>9}{'permuted':>9}{'lead':>7}{'onsets':>7}{'events':>7}")
    for name, table in rows.items():
        for kind, row in table.items():
            if "share" in row:
                print(f"{name:<42}{kind:<8}{row['share']:>9.2f}")
                continue
            print(
                f"{name:<42}{kind:<8}{row['hit_rate']:>9.2f}{row['permutation']:>9.2f}{row['lead']:>+7.2f}"
                f"{row['onsets_per_clip']:>7.1f}{row['events_per_clip']:>7.1f}"
            )
    print("a token's place from its hidden state at the first bridge point, R^2: " + ", ".join(
        f"{name} {value:.2f}" for name, value in probe.items()
    ))  # fmt: skip
    result = {
        "experiment": "bounce_diagnosis",
        "position_probe_r2": probe,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": str(args.model),
        "held_out_clips": len(records),
        "kinds": {kind: kinds.count(kind) for kind in sorted(set(kinds))},
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.results_name}.json"
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
