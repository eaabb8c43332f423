"""First-block step caching on the bundled demo model: the speed it buys, and what it costs in the synthetic world.

    python benchmarks/step_cache.py [--world DIR] [--thresholds 0.05,0.1,0.2]    # about 10 minutes on 2 cores

For each threshold (0, the uncached baseline, first), the demo model generates a clip for each of the world's 32
held-out captions at its own settings (clip i with seed i, batches of 8), timed end to end, and the clips are scored
as the laboratory scores them (`synthetic.scoring`): per-clip faithfulness and sync scores, the event-level sync and
its chance level; and the final latents against the uncached run's: the relative distance |x - x0| / |x0| per clip
and stream, averaged. The world is made again from the model's recipe (`recipe.json`)
unless --world names one. Writes benchmarks/results/step_cache.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bridgedit.data.manifest import load_manifest
from bridgedit.generation import BUNDLED_MODEL
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic.recipe import model_world
from bridgedit.synthetic.scoring import event_statistics, prompts_for, score_clip, summarize_scores

RESULTS = Path(__file__).parent / "results"
BATCH = 8


@torch.no_grad()
def scored_run(pipe, records, threshold: float) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Generate every record at one threshold (clip i with seed i), timed end to end (decoding included), and score
    the clips; also the final latents (video, audio), for the distance to the uncached run."""
    settings = dict(pipe.generation_defaults)
    seconds_of_sound = settings.get("audio_seconds") or settings["num_frames"] / settings["fps"]
    reused = forwards = 0
    samples, video_latents, audio_latents = [], [], []
    started = time.perf_counter()
    for start in range(0, len(records), BATCH):
        chunk = records[start : start + BATCH]
        prompts = [prompts_for(record, "hvgc") for record in chunk]
        arguments = {key: [p[key] for p in prompts] for key in prompts[0]}
        generators = [torch.Generator().manual_seed(start + i) for i in range(len(chunk))]
        output = pipe(
            **arguments, generator=generators, output_type="latent", progress=False, step_cache=threshold, **settings
        )
        reused, forwards = reused + output.step_cache.reused, forwards + output.step_cache.forwards
        frames = pipe.decode_video(output.video, "np")
        sound = pipe.decode_audio(output.audio, seconds_of_sound, "np")
        samples += [(record, frames[i], sound[i], settings["fps"], pipe.sample_rate) for i, record in enumerate(chunk)]
        video_latents.append(output.video)
        audio_latents.append(output.audio)
    seconds = time.perf_counter() - started
    per_clip = [score_clip(frames, audio, fps, rate, record["scene"]) for record, frames, audio, fps, rate in samples]
    statistics = event_statistics([(frames, audio.mean(axis=0), fps, rate) for _, frames, audio, fps, rate in samples])
    run = {
        "seconds": seconds,
        "seconds_per_clip": seconds / len(records),
        "reused_share": reused / forwards,
        "scores": summarize_scores(per_clip),
        "event_sync": statistics["sync"],
        "event_sync_chance": statistics["sync_chance"],
    }
    return run, torch.cat(video_latents), torch.cat(audio_latents)


def relative_distance(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over clips of |x - x0| / |x0| (Frobenius norms per clip)."""
    flat_x, flat_reference = x.flatten(1), reference.flatten(1)
    return float(((flat_x - flat_reference).norm(dim=1) / flat_reference.norm(dim=1)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL))
    parser.add_argument("--world", type=Path, help="a world made before by the recipe or a benchmark (its dataset)")
    parser.add_argument("--thresholds", default="0.05,0.1,0.2")
    args = parser.parse_args()
    thresholds = [0.0] + [float(t) for t in args.thresholds.split(",")]

    started = time.perf_counter()
    pipe = BridgeDiTPipeline.from_pretrained(args.model, dtype=torch.float32)
    with model_world(args.model, args.world) as dataset:
        records = load_manifest(dataset, split="test")
    runs, reference = {}, None
    for threshold in thresholds:
        runs[threshold], video, audio = scored_run(pipe, records, threshold)
        reference = reference or (video, audio)  # the uncached run's latents
        runs[threshold]["latent_distance"] = {
            "video": relative_distance(video, reference[0]),
            "audio": relative_distance(audio, reference[1]),
        }

    baseline = runs[0.0]
    print(f"{'threshold':>9}{'s/clip':>8}{'speed-up':>9}{'reused':>8}{'event sync':>11}{'(chance)':>9}"
          f"{'colour':>7}{'shape':>6}{'material':>9}{'Δ video':>9}{'Δ audio':>9}")  # fmt: skip
    for threshold, run in runs.items():
        run["speed_up"] = baseline["seconds"] / run["seconds"]
        scores, distance = run["scores"], run["latent_distance"]
        print(
            f"{threshold:>9g}{run['seconds_per_clip']:>8.2f}{run['speed_up']:>8.2f}×{run['reused_share']:>8.0%}"
            f"{run['event_sync']:>11.3f}{run['event_sync_chance']:>9.3f}{scores['colour']:>7.2f}{scores['shape']:>6.2f}"
            f"{scores['material']:>9.2f}{distance['video']:>9.3f}{distance['audio']:>9.3f}"
        )
    result = {
        "benchmark": "step_cache",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": Path(args.model).name,
        "held_out_clips": len(records),
        "threads": torch.get_num_threads(),
        "runs": {str(threshold): run for threshold, run in runs.items()},
        "seconds": time.perf_counter() - started,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "step_cache.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
