"""Is DCA's sync above "none"'s across seeds? Each seed of `experiments/synthetic/ablation.py` is one training run of each
variant from the same towers; this script takes the seed, not the clip, as the unit: per seed, DCA's per-clip lead
over "none" (sync minus its chance level, DCA's run minus "none"'s run of the same seed on the same clips, averaged
over the 32 held-out clips), then, over every seed of every set of towers in a group, a one-sided one-sample t-test
and a one-sided Wilcoxon signed-rank test of those per-seed leads (scipy), and how many seeds have DCA above.

The per-clip tests in ablation.py's tables pool 32 clips x seeds as if every clip pair were independent; clips of
one training run share that run's bridges, so the per-seed test here is the stricter answer to "across seeds".

    python experiments/synthetic/lead_across_towers.py
        # every committed set of none/DCA runs at the main table's bridge budget (1,200 steps at batch 8), grouped
        # into the first recipe's towers (1,200 float32 tower steps), towers trained five or seven times that, and
        # towers of the recipe's tower stage (3,600 bf16 steps in one run); reads
        # experiments/synthetic/results/ablation-runs/, trains nothing, takes seconds; writes
        # experiments/synthetic/results/lead_across_towers.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from runs import BASELINE, COMMITTED_RUNS, PROPOSED, PROTOCOLS, RESULTS

from bridgedit.atomic import write_text_atomic
from bridgedit.synthetic.scoring import sync_above_chance_per_clip

RUNS = COMMITTED_RUNS
VARIANT = PROPOSED


class TowerSet(NamedTuple):
    """The none/DCA runs trained from one set of towers with one bridge setting, as ablation.py keeps them."""

    group: str  # which tower budget the towers had: FIRST_RECIPE_TOWERS, LONGER_TOWERS or RECIPE_TOWERS
    label: str
    folder: str  # under RUNS


FIRST_RECIPE_TOWERS = "the first recipe's towers (1,200 float32 tower steps)"
LONGER_TOWERS = "towers trained 5 or 7 times the first recipe's tower budget"
RECIPE_TOWERS = "the recipe's tower stage: 3,600 bf16 steps in one run (31-33 minutes)"
_FOLDER = "ablation-1200-lr0.005-independent-tb2-batch8"
#: every committed set at the main table's bridge budget, with the docs/synthetic.md section that reports it
TOWER_SETS = (
    TowerSet(FIRST_RECIPE_TOWERS, "b2f83913, fp32 (the main table)", _FOLDER),
    TowerSet(FIRST_RECIPE_TOWERS, "57f92a37, fp32 (another machine's recipe)", f"{_FOLDER}-towers57f92a37"),
    TowerSet(FIRST_RECIPE_TOWERS, "aec844e4, bf16 bridges (the bf16 table, five seeds)", f"{_FOLDER}-bf16"),
    TowerSet(LONGER_TOWERS, "5x bf464997, fp32 (the earlier machine)", f"{_FOLDER}-towersbf464997"),
    TowerSet(LONGER_TOWERS, "5x e10862e4, bf16 (from aec844e4)", f"{_FOLDER}-bf16-towerse10862e4"),
    TowerSet(LONGER_TOWERS, "7x 32b8602b, bf16 (from aec844e4)", f"{_FOLDER}-bf16-towers32b8602b"),
    TowerSet(LONGER_TOWERS, "5x 3a5b0519, bf16 (from a fresh recipe's fde2857d)", f"{_FOLDER}-bf16-towers3a5b0519"),
    TowerSet(LONGER_TOWERS, "7x e1be7433, bf16 (from fde2857d)", f"{_FOLDER}-bf16-towerse1be7433"),
    TowerSet(
        RECIPE_TOWERS,
        "64e0c57a (tower_budget.py --from-init, from fde2857d's random towers)",
        f"{_FOLDER}-bf16-towers64e0c57a",
    ),
    TowerSet(
        RECIPE_TOWERS,
        "87e4c0f3 (the timed recipe before the x264 fix: the main table)",
        f"{_FOLDER}-bf16-towers87e4c0f3",
    ),
)


def load_runs(folder: Path) -> dict[str, dict[int, dict]]:
    """variant -> seed -> that run's result, for BASELINE and VARIANT."""
    runs: dict[str, dict[int, dict]] = {BASELINE: {}, VARIANT: {}}
    for path in sorted(folder.glob("*-seed*.json")):
        result = json.loads(path.read_text())
        if result["variant"] in runs:
            runs[result["variant"]][result["seed"]] = result
    return runs


def per_seed_leads(runs: dict[str, dict[int, dict]], result_key: str, direction: str) -> dict[int, float]:
    """seed -> VARIANT's mean per-clip lead over BASELINE's run of that seed, for the seeds where both runs have the
    protocol."""
    leads = {}
    for seed in sorted(set(runs[VARIANT]) & set(runs[BASELINE])):
        ours, theirs = runs[VARIANT][seed], runs[BASELINE][seed]
        if result_key in ours and result_key in theirs:
            difference = sync_above_chance_per_clip(ours[result_key][direction]) - sync_above_chance_per_clip(
                theirs[result_key][direction]
            )
            leads[seed] = float(difference.mean())
    return leads


def across_seeds(leads: list[float]) -> dict[str, float]:
    """Mean, spread and one-sided tests (greater than 0) of per-seed leads."""
    from scipy.stats import ttest_1samp, wilcoxon

    values = np.asarray(leads)
    summary = {
        "seeds": len(values),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "seeds_with_dca_above": int((values > 0).sum()),
    }
    if len(values) > 1:
        summary["t_test_p"] = float(ttest_1samp(values, 0.0, alternative="greater").pvalue)
        summary["wilcoxon_p"] = float(wilcoxon(values, alternative="greater").pvalue)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=str(RUNS), help="ablation.py's committed per-run results")
    parser.add_argument("--out", default=str(RESULTS / "lead_across_towers.json"), help="where the JSON goes")
    args = parser.parse_args()

    report: dict = {
        "benchmark": "lead_across_towers",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "protocols": {},
    }
    for protocol in PROTOCOLS:
        sets, groups = [], {}
        for tower_set in TOWER_SETS:
            folder = Path(args.runs) / tower_set.folder
            if not folder.is_dir():
                raise SystemExit(f"{folder} is missing: the runs of {tower_set.label!r} are not where TOWER_SETS says")
            leads = per_seed_leads(load_runs(folder), protocol.result_key, protocol.direction)
            if not leads:
                continue  # runs scored before this protocol existed
            sets.append(
                {
                    "group": tower_set.group,
                    "towers": tower_set.label,
                    "folder": tower_set.folder,
                    "per_seed": leads,
                    **across_seeds(list(leads.values())),
                }
            )
            groups.setdefault(tower_set.group, []).extend(leads.values())
        report["protocols"][protocol.label] = {
            "sets": sets,
            "groups": {group: across_seeds(leads) for group, leads in groups.items()},
        }

    for label, protocol in report["protocols"].items():
        print(f"\n{label}: DCA's lead over none, per seed (mean over the held-out clips of sync above chance)")
        for row in protocol["sets"]:
            seeds = ", ".join(f"{lead:+.3f}" for lead in row["per_seed"].values())
            print(f"  {row['towers']:<55} {seeds}")
        for group, summary in protocol["groups"].items():
            tests = (
                f"t-test p = {summary['t_test_p']:.2g}, Wilcoxon p = {summary['wilcoxon_p']:.2g}"
                if "t_test_p" in summary
                else "one seed"
            )
            print(
                f"  {group}: {summary['seeds']} seeds, {summary['mean']:+.3f} ± {summary['std']:.3f}, DCA above in "
                f"{summary['seeds_with_dca_above']}; {tests}"
            )
    out = Path(args.out)
    write_text_atomic(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
