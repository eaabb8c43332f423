"""How many events do generated clips carry? Per model, the mean number of video events and audio onsets the
synthetic world's detectors find in clips generated for the held-out captions, next to the true count and the
detectors' count on the real clips, and each model's sync score next to its chance level (the same clips'
frames scored against another clip's audio). Many spurious events in both streams cap the event-level sync score near its
chance level, whatever the bridges do (docs/synthetic.md, "Sync is capped near its chance level by spurious events").

    python experiments/synthetic/event_counts.py --recipe outputs/demo MODEL_OR_CHECKPOINT [...]
        # writes experiments/synthetic/results/event_counts.json (--name NAME: NAME.json)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bridgedit.atomic import write_text_atomic
from bridgedit.data.manifest import load_manifest
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic.scoring import HELD_OUT_SEED, event_statistics, generate_for, real_clips

RESULTS = Path(__file__).parent / "results"


def generated(model: str, records: list[dict], seed: int = HELD_OUT_SEED) -> list[tuple]:
    """The clips the model generates for the records' captions, with the ablation's seeds (clip i: seed + i)."""
    return [
        (frames, audio.mean(axis=0), fps, rate)
        for _, frames, audio, fps, rate in generate_for(BridgeDiTPipeline.from_pretrained(model), records, seed=seed)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model folders or training checkpoints")
    parser.add_argument("--recipe", default="outputs/demo", help="the demo recipe's output folder (its held-out clips)")
    parser.add_argument("--name", default="event_counts", help="write experiments/synthetic/results/NAME.json")
    args = parser.parse_args()
    out = RESULTS / f"{args.name}.json"

    dataset = Path(args.recipe) / "dataset"
    records = load_manifest(dataset, split="test")
    real = [
        (frames, sound.mean(axis=0), record["fps"], rate)
        for record, (frames, sound, rate) in zip(records, real_clips(dataset, records))
    ]
    rows = {
        "true events": {"video_events": float(np.mean([len(r["scene"]["events"]) for r in records]))},
        "real clips": event_statistics(real),
    }
    rows["true events"]["audio_events"] = rows["true events"]["video_events"]  # every event is seen and heard
    for model in args.models:
        rows[model] = event_statistics(generated(model, records))
    summary = {
        "benchmark": "event_counts",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "test_clips": len(records),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(summary, indent=2) + "\n")
    print(f"{'':<70}{'video events':>14}{'audio events':>14}{'sync':>8}{'chance':>8}")
    for name, row in rows.items():
        print(
            f"{name:<70}{row['video_events']:>14.2f}{row['audio_events']:>14.2f}{row.get('sync', float('nan')):>8.3f}"
            f"{row.get('sync_with_another_clips_audio', float('nan')):>8.3f}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
