"""How long experiments/synthetic/ablation.py takes here for a table, from the seconds its runs measured.

Each committed run result records its training time and the time each protocol's scoring took. This script hands
the runs of a folder to N one-thread workers in the order `ablation.py --workers N` does (`longest_first`: every run
trained, "none"'s last; the next run to the first free worker) and reports when the last one finishes, for the
default protocols and with --extra-protocols, each run charged its training, the scoring of those protocols and a
fixed overhead per run (a process's start, loading the towers, the cross-modal gain; `--overhead`). The overhead is
calibrated with `--timed-wall`: the wall clock of a run of `ablation.py` that trained and scored exactly those runs
with the protocols `--timed-protocols` names, here 30 s a run (docs/synthetic.md, "The main table's time").

    python experiments/synthetic/ablation_time.py \\
            --runs experiments/synthetic/results/ablation-runs/ablation-1200-lr0.005-independent-tb2-batch8-bf16-towersfc71b19d
        # writes experiments/synthetic/results/ablation_time.json
    python experiments/synthetic/ablation_time.py --runs ... --seeds 2 --timed-wall 5448 \\
            --timed-protocols both_generated,both_generated_wa2,next_to_real_unguided
        # the overhead per run that makes the simulated schedule of seeds 0-1 last the measured 1:30:48
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from pathlib import Path

from runs import DEFAULT_PROTOCOLS, PAPER_JOINT_PROTOCOL, PROTOCOLS, RESULTS, VARIANTS, longest_first, run_name

from bridgedit.atomic import write_text_atomic
from bridgedit.synthetic.recipe import RecipeSettings

#: the overhead per run, calibrated on the 14 runs of seeds 0-1 from towers fc71b19d (1:30:48 measured end to end)
OVERHEAD_SECONDS = 30.0


def protocol_seconds(result: dict, key: str) -> float:
    """The seconds a run's scoring of one protocol took. Runs scored before each protocol had its own time recorded
    timed their first scoring, always the paper's joint samples, as "score_seconds"."""
    if f"{key}_seconds" in result:
        return result[f"{key}_seconds"]
    if key == PAPER_JOINT_PROTOCOL.result_key and "score_seconds" in result:
        return result["score_seconds"]
    raise KeyError(f"{result['variant']} seed {result['seed']}: no time recorded for {key}")


def makespan(costs: list[float], workers: int) -> float:
    """When the last of the runs finishes, each handed in order to the first free worker."""
    free = [0.0] * workers
    for cost in costs:
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)


def run_costs(results: dict[tuple[str, int], dict], keys: list[str], overhead: float) -> list[float]:
    """Each run's seconds in `ablation.py`'s order (every run to be trained)."""
    order = longest_first(list(results), {})
    return [
        results[run]["train_seconds"] + sum(protocol_seconds(results[run], key) for key in keys) + overhead
        for run in order
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", required=True, help="a folder of committed run results, ablation-runs/ablation-...")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 of every variant (the table's: 3)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--overhead", type=float, default=OVERHEAD_SECONDS, help="seconds per run besides those recorded"
    )
    parser.add_argument("--timed-wall", type=float, help="calibrate: the measured wall clock of these runs, seconds")
    parser.add_argument("--timed-protocols", help="calibrate: comma-separated result keys that timed run scored")
    parser.add_argument("--results-name", default="ablation_time", help="write experiments/synthetic/results/NAME.json")
    args = parser.parse_args()

    folder = Path(args.runs)
    results = {}
    for seed in range(args.seeds):
        for variant in VARIANTS:
            path = folder / f"{Path(run_name(variant, seed, RecipeSettings())).name}.json"
            if not path.is_file():
                raise SystemExit(f"--runs {folder}: no result for {variant} seed {seed} ({path.name})")
            results[(variant, seed)] = json.loads(path.read_text())
    report = {
        "benchmark": "ablation_time",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "runs": folder.as_posix(),
        "seeds": args.seeds,
        "workers": args.workers,
    }
    if args.timed_wall is not None:
        keys = (args.timed_protocols or "").split(",")
        try:
            bare = makespan(run_costs(results, keys, 0.0), args.workers)
        except KeyError as error:
            raise SystemExit(f"--timed-protocols: {error.args[0]}") from None
        runs_per_worker = len(results) / args.workers  # the overhead lengthens each worker's share of runs
        report["calibration"] = {
            "timed_wall_s": args.timed_wall,
            "protocols": keys,
            "simulated_without_overhead_s": bare,
            "overhead_per_run_s": (args.timed_wall - bare) / runs_per_worker,
        }
        print(
            f"measured {args.timed_wall / 60:.1f} min, recorded seconds alone {bare / 60:.1f} min: "
            f"{report['calibration']['overhead_per_run_s']:.0f} s of overhead a run"
        )
    report["overhead_per_run_s"] = args.overhead
    for label, protocols in (("default protocols", DEFAULT_PROTOCOLS), ("--extra-protocols", PROTOCOLS)):
        keys = [protocol.result_key for protocol in protocols]
        try:
            costs = run_costs(results, keys, args.overhead)
        except KeyError as error:  # runs never scored that way: nothing to project from
            report[label] = {"protocols": keys, "not_measured": error.args[0]}
            print(f"{label}: not measured ({error.args[0]})")
            continue
        report[label] = {
            "protocols": keys,
            "mean_run_s": sum(costs) / len(costs),
            "table_s": makespan(costs, args.workers),
        }
        print(
            f"{label}: {len(costs)} runs, {report[label]['mean_run_s'] / 60:.1f} min a run, the table "
            f"{report[label]['table_s'] / 3600:.2f} h with {args.workers} workers"
        )
    out = RESULTS / f"{args.results_name}.json"
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
