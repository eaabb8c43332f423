"""Can the demo recipe's pretrained towers learn a clip's events at all? Fine-tune them (fusion "none", the tower
stage's settings) on a few training clips until they should have memorised them, then generate from those clips'
own captions and count the events the world's detectors find, next to the truth and the pretrained towers. If the
samples then carry the clips' events, the codec and the tower's form can represent them and what the towers lack
is training (docs/synthetic.md, "What the samples look like").

    python experiments/synthetic/tower_memorisation.py --clips 1 --steps 1200
        # one clip (four copies, batch 4): its events come back after 1,200 steps (not after 400)
    python experiments/synthetic/tower_memorisation.py --clips 16 --copies 1 --batch 16 --steps 400 --samples 1
        # 16 clips with distinct video captions: not memorised after 400 steps
    python experiments/synthetic/tower_memorisation.py --clips 16 --copies 1 --batch 16 --steps 400 --samples 1 --lr 3e-3
        # the same at three times the tower stage's learning rate: no faster

Writes experiments/synthetic/results/tower_memorise-SETTINGS.json; the fine-tuning run is kept under RECIPE/runs/memorise-SETTINGS
and resumes when re-run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bridgedit.atomic import write_text_atomic
from bridgedit.data.manifest import MANIFEST_NAME, load_manifest
from bridgedit.jsonl import write_jsonl
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic.detect import video_events
from bridgedit.synthetic.recipe import RecipeSettings, run_training, training_config
from bridgedit.synthetic.scoring import HELD_OUT_SEED, event_statistics, generate_for, real_clips
from bridgedit.training.trainer import checkpoint_folder

RESULTS = Path(__file__).parent / "results"


def distinct_clips(records: list[dict], count: int) -> list[dict]:
    """The first `count` training clips whose video captions differ (one caption, one clip to memorise)."""
    chosen, captions = [], set()
    for record in records:
        if record["captions"]["video"] not in captions:
            captions.add(record["captions"]["video"])
            chosen.append(record)
        if len(chosen) == count:
            return chosen
    raise SystemExit(f"the dataset has only {len(chosen)} training clips with distinct video captions, not {count}")


def write_subset(folder: Path, dataset: Path, clips: list[dict], copies: int) -> None:
    """A dataset folder holding `copies` copies of each clip (distinct ids), its media read from `dataset`."""
    folder.mkdir(parents=True, exist_ok=True)
    media = folder / "clips"
    if not media.exists():
        media.symlink_to((dataset / "clips").resolve())
    write_jsonl(
        folder / MANIFEST_NAME, [{**clip, "id": f"{clip['id']}-{copy}"} for clip in clips for copy in range(copies)]
    )


def loss_means(history: list[dict], key: str, window: int = 50) -> list[float]:
    """Mean of `key` over the first and the last `window` steps."""
    return [float(np.mean([h[key] for h in history[:window]])), float(np.mean([h[key] for h in history[-window:]]))]


def pretrained_towers(recipe: Path) -> Path:
    """The recipe's pretrained towers (the end of its tower stage: its recipe.json's tower steps, else today's
    default), or a clear exit if that stage has not run."""
    recorded = recipe / "recipe.json"
    steps = json.loads(recorded.read_text())["tower_steps"] if recorded.is_file() else RecipeSettings().tower_steps
    towers = checkpoint_folder(recipe / "runs" / "towers", steps)
    if not towers.is_dir():
        raise SystemExit(f"{towers} is missing: run `bridgedit synthetic recipe --out {recipe}` first")
    return towers


def event_reference_rows(dataset, records: list[dict]) -> dict:
    """The rows every event count starts from: the world's true events per clip, and the detectors' statistics on
    the real clips."""
    real = [
        (frames, sound.mean(axis=0), record["fps"], rate)
        for record, (frames, sound, rate) in zip(records, real_clips(dataset, records))
    ]
    return {
        "true events per clip": float(np.mean([len(r["scene"]["events"]) for r in records])),
        "real clips": event_statistics(real),
    }


def tower_training_config(args, **paths):
    """A tower-stage run (no bridges, every tower weight trainable) with the command line's steps, lr and batch;
    `paths`: base, dataset, cache, run_dir (and any other `training_config` setting)."""
    return training_config(
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch,
        seed=0,
        bridge={"fusion": "none"},
        trainable={"policy": "towers"},
        **paths,
    )


def save_and_print_event_rows(out: Path, benchmark: str, history: list, rows: dict, **fields) -> dict:
    """Write a tower study's summary (its command, the training's first / last losses, the event rows, `fields`) to
    `out` and print its rows as a table."""
    summary = {
        "benchmark": benchmark,
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        **fields,
        "video_loss_first_last_50": loss_means(history, "loss_video"),
        "audio_loss_first_last_50": loss_means(history, "loss_audio"),
        "rows": rows,
    }
    write_text_atomic(out, json.dumps(summary, indent=2) + "\n")
    width = max(len(label) for label in rows) + 2
    print(f"{'':<{width}}{'video events':>14}{'audio events':>14}{'sync':>8}{'chance':>8}")
    for label, row in rows.items():
        if isinstance(row, dict):
            print(
                f"{label:<{width}}{row['video_events']:>14.2f}{row['audio_events']:>14.2f}{row['sync']:>8.3f}"
                f"{row['sync_chance']:>8.3f}"
            )
    print(
        f"true events per clip {rows['true events per clip']:.2f}; video loss {summary['video_loss_first_last_50']}, "
        f"audio loss {summary['audio_loss_first_last_50']} (first / last 50 steps)\nwrote {out}"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="outputs/demo", help="the demo recipe's output folder (towers and dataset)")
    parser.add_argument("--clips", type=int, default=1, help="training clips to memorise")
    parser.add_argument("--copies", type=int, default=4, help="copies of each clip in the fine-tuning set")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--lr", type=float, default=1e-3, help="the tower stage's")
    parser.add_argument("--samples", type=int, default=8, help="samples generated per clip (seeds 10000 + i)")
    args = parser.parse_args()

    recipe = Path(args.recipe)
    dataset, towers = recipe / "dataset", pretrained_towers(recipe)
    clips = distinct_clips(load_manifest(dataset, split="train"), args.clips)
    name = f"memorise-{args.clips}clips-x{args.copies}-batch{args.batch}-lr{args.lr:g}-{args.steps}steps"
    subset, run_dir = recipe / "runs" / name / "dataset", recipe / "runs" / name
    write_subset(subset, dataset, clips, args.copies)
    config = tower_training_config(
        args, base=towers, dataset=subset, cache=run_dir / "cache", run_dir=run_dir / "train"
    )
    final = run_training(config, run_dir / "train")

    records = [clip for clip in clips for _ in range(args.samples)]  # sample i of a clip: seed HELD_OUT_SEED + index
    rows = event_reference_rows(dataset, clips)
    for label, model in (("pretrained towers", towers), ("fine-tuned", final)):
        generated = generate_for(BridgeDiTPipeline.from_pretrained(model), records, seed=HELD_OUT_SEED)
        clips_out = [(frames, audio.mean(axis=0), fps, rate) for _, frames, audio, fps, rate in generated]
        rows[label] = event_statistics(clips_out)
        rows[label]["video_event_times_per_sample"] = [
            [round(float(t), 4) for t in video_events(frames, fps)] for frames, _, fps, _ in clips_out
        ]
    history = json.loads((run_dir / "train" / "history.json").read_text())
    clip_fields = {"clips": [c["id"] for c in clips], "true_events": [c["scene"]["events"] for c in clips]}
    save_and_print_event_rows(RESULTS / f"tower_{name}.json", "tower_memorisation", history, rows, **clip_fields)


if __name__ == "__main__":
    main()
