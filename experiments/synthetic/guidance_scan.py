"""How does DCA's sync lead over "none", with both streams generated, depend on the audio guidance scale w_a?
(issue #7's goal; docs/synthetic.md, "The audio guidance scale and DCA's lead")

The main table (experiments/synthetic/ablation.py) scores every run's joint samples at the demo model's w_a = 2 (and, with
--extra-protocols or in its earlier runs, at the paper's w_a = 7 and without audio guidance, w_a = 1). This script
takes finished "none" and DCA runs of one ablation folder and generates the same held-out samples (the same captions,
the same seeds) at other audio guidance scales, the video's guidance left at the paper's. At each scale it reports, per
variant, the event-level sync next to its chance level, the audio onsets and video events detected per clip, and text
faithfulness (the named colour and shape on screen, the named material's sound in the audio); and DCA's lead over
"none": clip by clip (`paired_lead`, pooled over seeds) and seed by seed (lead_across_towers' tests over seeds). The
paper's w_a = 7 is always in the table. A run's samples the ablation scored with their per-clip scores are read from
its result, not generated again.

    python experiments/synthetic/guidance_scan.py --workers 2 \\
            --runs outputs/demo/runs/ablation-1200-lr0.005-independent-tb2-batch8-bf16-towers87e4c0f3
        # the first main table's "none" and DCA runs, seeds 0-6, at w_a = 1, 2, 4 (plus each run's own w_a = 7 scores);
        # about 90 s per run and scale on one thread, two runs side by side; writes
        # experiments/synthetic/results/guidance_scan.json
    python experiments/synthetic/guidance_scan.py --workers 2 --audio-guidance 2 --first-seed 7 --seeds 10 \\
            --results-name guidance_scan-seeds7-9 --runs outputs/demo/runs/ablation-...-towers87e4c0f3
        # seeds 7-9 alone (trained after w_a = 2 was picked on seeds 0-6: the check fixed before its runs)

Resumable: each run's samples at each scale are scored once and kept in RUNS/VARIANT-seedS/guidance_scan.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from ablation import run_workers
from lead_across_towers import across_seeds, per_seed_leads
from runs import (
    BASELINE,
    JOINT_DIRECTION,
    JOINT_PROTOCOLS,
    PAPER_AUDIO_GUIDANCE,
    PROPOSED,
    RESULTS,
    format_runs,
    parse_runs,
    per_clip_scores,
)

from bridgedit.atomic import write_text_atomic
from bridgedit.data.manifest import load_manifest
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic.scoring import HELD_OUT_SEED, SCORES, paired_lead, score_model, summarize_scores
from bridgedit.training.trainer import LATEST_NAME

SCAN_FILE = "guidance_scan.json"
VARIANTS = (BASELINE, PROPOSED)


def run_folder(runs: Path, variant: str, seed: int) -> Path:
    return runs / f"{variant}-seed{seed}"


def scored_by_ablation(folder: Path, scale: float) -> dict | None:
    """A run's joint samples at an audio guidance scale as the ablation scored them ({"per_clip": [...], JOINT_DIRECTION:
    event statistics}), if it did, with their per-clip scores."""
    result = json.loads((folder / "scores.json").read_text())
    for protocol in JOINT_PROTOCOLS:
        if protocol.overrides["audio_guidance"] == scale and protocol.result_key in result:
            if (per_clip := per_clip_scores(result, protocol)) is not None:
                return {"per_clip": per_clip, JOINT_DIRECTION: result[protocol.result_key][JOINT_DIRECTION]}
    return None


def scan_run(runs: Path, variant: str, seed: int, scales: list[float], test_records: list[dict]) -> None:
    """Generate and score one run's held-out samples at each audio guidance scale it has not been scored at yet (by
    this script or by the ablation)."""
    folder = run_folder(runs, variant, seed)
    path = folder / SCAN_FILE
    scanned = json.loads(path.read_text()) if path.is_file() else {}
    pipe = None
    for scale in scales:
        if f"{scale:g}" in scanned or scored_by_ablation(folder, scale) is not None:
            continue
        if pipe is None:
            pipe = BridgeDiTPipeline.from_pretrained(folder / (folder / LATEST_NAME).read_text().strip())
        started = time.perf_counter()
        per_clip, statistics = score_model(
            pipe, test_records, captions="hvgc", seed=HELD_OUT_SEED, audio_guidance=scale
        )
        scanned[f"{scale:g}"] = {
            "per_clip": per_clip,
            JOINT_DIRECTION: statistics,
            "seconds": time.perf_counter() - started,
        }
        write_text_atomic(path, json.dumps(scanned, indent=2))  # after every scale: an interrupted scan loses one
        logging.info(
            "%s seed %d, w_a = %g: sync %.3f (chance %.3f)",
            variant,
            seed,
            scale,
            statistics["sync"],
            statistics["sync_chance"],
        )


def run_at(runs: Path, variant: str, seed: int, scale: float) -> dict:
    """One run's {"per_clip": [...], JOINT_DIRECTION: event statistics} at an audio guidance scale."""
    folder = run_folder(runs, variant, seed)
    return scored_by_ablation(folder, scale) or json.loads((folder / SCAN_FILE).read_text())[f"{scale:g}"]


def tabulate(runs: Path, seeds: list[int], scales: list[float]) -> dict:
    """Per scale: each variant's scores (mean ± std over seeds) and DCA's lead over "none" per clip and per seed."""
    table = {}
    for scale in scales:
        by_variant = {variant: [run_at(runs, variant, seed, scale) for seed in seeds] for variant in VARIANTS}
        row: dict = {}
        for variant, results in by_variant.items():
            per_seed = [
                {
                    **summarize_scores(r["per_clip"]),
                    **{
                        key: r[JOINT_DIRECTION][key]
                        for key in ("sync_chance", "sync_above_chance", "video_events", "audio_events")
                    },
                }
                for r in results
            ]
            row[variant] = {
                name: {
                    "mean": float(np.mean([s[name] for s in per_seed])),
                    "std": float(np.std([s[name] for s in per_seed], ddof=1)) if len(seeds) > 1 else 0.0,
                }
                for name in per_seed[0]
            }
        row["lead_per_clip"] = paired_lead(by_variant[PROPOSED], by_variant[BASELINE], JOINT_DIRECTION)
        seed_leads = per_seed_leads(
            {
                variant: {seed: {"scan": result} for seed, result in zip(seeds, results)}
                for variant, results in by_variant.items()
            },
            "scan",
            JOINT_DIRECTION,
        )
        row["lead_per_seed"] = {"per_seed": seed_leads, **across_seeds(list(seed_leads.values()))}
        table[f"{scale:g}"] = row
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runs",
        required=True,
        help="a folder of experiments/synthetic/ablation.py's runs, RECIPE/runs/ablation-..."
        " (its none-seedS and dca-seedS runs finished and scored)",
    )
    parser.add_argument("--seeds", type=int, default=7, help="seeds FIRST..N-1 of both variants")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="leave out the seeds below it (e.g. fresh seeds, apart from those a choice was made on)",
    )
    parser.add_argument(
        "--audio-guidance",
        default="1,2,4",
        help=f"comma-separated scales to generate at, besides the paper's w_a = {PAPER_AUDIO_GUIDANCE:g} (the "
        "scales the ablation scored a run at are read from its result)",
    )
    parser.add_argument("--workers", type=int, default=1, help="N one-thread processes side by side")
    parser.add_argument("--results-name", default="guidance_scan", help="write experiments/synthetic/results/NAME.json")
    parser.add_argument("--only", help=argparse.SUPPRESS)  # a worker's share: VARIANT@SEED;VARIANT@SEED...
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    runs = Path(args.runs)
    recipe_folder = runs.parent.parent  # RECIPE/runs/FOLDER
    seeds = list(range(args.first_seed, args.seeds))
    if not seeds:
        raise SystemExit(f"--first-seed {args.first_seed} --seeds {args.seeds}: no seeds between them")
    try:
        scales = sorted({float(scale) for scale in args.audio_guidance.split(",")} | {PAPER_AUDIO_GUIDANCE})
    except ValueError:
        raise SystemExit(f"--audio-guidance {args.audio_guidance!r}: not comma-separated numbers") from None
    unfinished = [
        f"{variant} seed {seed}"
        for seed in seeds
        for variant in VARIANTS
        if not (run_folder(runs, variant, seed) / "scores.json").is_file()
    ]
    if unfinished:
        raise SystemExit(
            f"--runs {runs}: not finished and scored by experiments/synthetic/ablation.py: {', '.join(unfinished)}"
        )
    absent = [
        f"{variant} seed {seed}"
        for seed in seeds
        for variant in VARIANTS
        if not (run_folder(runs, variant, seed) / LATEST_NAME).is_file()
    ]
    if absent:  # e.g. results committed from another machine, reused by the ablation without their checkpoints
        raise SystemExit(
            f"--runs {runs}: scored, but their trained bridges are not here to generate from: {', '.join(absent)}"
        )
    test_records = load_manifest(recipe_folder / "dataset", split="test")

    if args.only is not None:  # a worker of --workers
        for variant, seed in parse_runs(args.only):
            scan_run(runs, variant, seed, scales, test_records)
        return
    pending = [(variant, seed) for seed in seeds for variant in VARIANTS]
    if args.workers > 1:
        run_workers(pending, args.workers, script=__file__)
    else:
        logging.info("scanning %s", format_runs(pending))
        for variant, seed in pending:
            scan_run(runs, variant, seed, scales, test_records)

    table = tabulate(runs, seeds, scales)
    report = {
        "benchmark": "guidance_scan",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "runs": runs.as_posix(),
        "seeds": seeds,
        "test_clips": len(test_records),
        "audio_guidance": table,
    }
    out = RESULTS / f"{args.results_name}.json"
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    columns = ("sync", "sync_above_chance", "audio_events", "video_events", *[s for s in SCORES if s != "sync"])
    print(f"{'w_a':>4} {'variant':<6}" + "".join(f"{name:>19}" for name in columns))
    for scale, row in table.items():
        for variant in VARIANTS:
            print(
                f"{scale:>4} {variant:<6}"
                + "".join(f"{row[variant][n]['mean']:>12.3f} ± {row[variant][n]['std']:.3f}" for n in columns)
            )
        clip, seed = row["lead_per_clip"], row["lead_per_seed"]
        print(
            f"{'':>4} DCA's lead: per clip {clip['mean']:+.3f} ± {clip['standard_error']:.3f} (p = {clip['p_value']:.2g}, "
            f"{clip['pairs']} pairs); per seed {seed['mean']:+.3f} ± {seed['std']:.3f}, above in "
            f"{seed['seeds_with_dca_above']} of {seed['seeds']} (t-test p = {seed.get('t_test_p', float('nan')):.2g})"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
