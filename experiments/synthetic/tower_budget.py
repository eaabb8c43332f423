"""Do the demo recipe's towers make the world's events with more training? Continue the recipe's tower stage
(fusion "none", its own settings: lr, batch, uniform coupled timesteps, caption dropout) on the whole training set
for more steps, then generate from the held-out captions at every checkpoint and count the events the world's
detectors find, next to the truth and the pretrained towers (docs/synthetic.md, "What the samples look like").

    python experiments/synthetic/tower_budget.py --steps 2400
        # 2,400 more steps (three times the recipe's tower budget in all), checkpoints every 600; about 77 minutes
        # of training and 10 of scoring on 2 cores
    python experiments/synthetic/tower_budget.py --steps 2400 --after 2400steps-batch16-lr0.001
        # 2,400 steps more again, from the end of that run (learning rate warmed up and decayed again): five times
        # the recipe's tower budget in all; that run's rows are read from its results file
    python experiments/synthetic/tower_budget.py --steps 2400 --after 2400steps-batch16-lr0.001+2400steps-batch16-lr0.001
        # and again from the end of that one (seven times in all; the "+" chain names every continuation)

    python experiments/synthetic/tower_budget.py --steps 2400 --precision bf16
        # the same under bf16 autocast (on a CPU with native bf16; settings name ...-bf16)
    python experiments/synthetic/tower_budget.py --from-init --steps 3600 --precision bf16
        # the tower stage again from the recipe's random towers (RECIPE/init), 3,600 steps in one run (three times
        # the recipe's budget, one warm-up and one cosine decay; 31 minutes in bf16 here): settings name init-...

Writes experiments/synthetic/results/tower_budget-SETTINGS.json (with --after: tower_budget-AFTER+SETTINGS.json) with the
fingerprint of the recipe's towers it started from (with --from-init: of the recipe's random towers); where that file
is already committed from other towers (another machine's recipe), SETTINGS gets "-towers" + the first 8 hex digits
of ours, so it is never overwritten. The training
run is kept under RECIPE/runs/towers-more-SETTINGS (towers-more-AFTER+SETTINGS; with --from-init towers-init-SETTINGS)
and resumes when re-run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

from event_counts import generated
from runs import towers_fingerprint
from tower_memorisation import event_reference_rows, pretrained_towers, save_and_print_event_rows, tower_training_config

from bridgedit.data.manifest import load_manifest
from bridgedit.synthetic.recipe import PRECISION_MODES, run_training
from bridgedit.synthetic.scoring import event_statistics
from bridgedit.training.trainer import bf16_unavailable_reason, checkpoint_folder

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="outputs/demo", help="the demo recipe's output folder (towers and dataset)")
    parser.add_argument("--steps", type=int, default=2400, help="tower steps beyond the recipe's")
    parser.add_argument("--batch", type=int, default=16, help="the tower stage's")
    parser.add_argument("--lr", type=float, default=1e-3, help="the tower stage's")
    parser.add_argument(
        "--after",
        metavar="SETTINGS",
        help="continue from the last checkpoint of this script's run with these settings (e.g. "
        "2400steps-batch16-lr0.001) rather than from the recipe's towers",
    )
    parser.add_argument(
        "--from-init",
        action="store_true",
        help="train the tower stage again from the recipe's random towers (RECIPE/init) for --steps "
        "in one run, rather than continuing the recipe's trained towers",
    )
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISION_MODES),
        default="fp32",
        help="train in float32 or under bf16 autocast (refused on a CPU without native bf16)",
    )
    args = parser.parse_args()
    if args.precision == "bf16" and (reason := bf16_unavailable_reason()):
        raise SystemExit(f"--precision bf16: {reason}; use --precision fp32")

    recipe = Path(args.recipe)
    dataset, towers = recipe / "dataset", pretrained_towers(recipe)
    plan = plan_run(args, recipe, towers)
    config = tower_training_config(
        args,
        base=plan.base,
        dataset=dataset,
        cache=plan.run_dir / "cache",
        run_dir=plan.run_dir,
        precision=args.precision,
    )
    run_training(config, plan.run_dir)

    records = load_manifest(dataset, split="test")
    rows = dict(plan.rows_before)
    if not rows:
        rows = {
            **event_reference_rows(dataset, records),
            f"pretrained towers (recipe, {own_steps_of(towers)} steps)": event_statistics(
                generated(str(towers), records)
            ),
        }
    for checkpoint in sorted(plan.run_dir.glob("checkpoint-*")):
        steps = own_steps_of(checkpoint)
        label = f"{steps} steps from the random towers" if args.from_init else f"+{plan.steps_before + steps} steps"
        rows[label] = event_statistics(generated(str(checkpoint), records))
    history = json.loads((plan.run_dir / "history.json").read_text())
    fields = {"towers_fingerprint": plan.fingerprint, "test_clips": len(records)}
    save_and_print_event_rows(RESULTS / f"tower_budget-{plan.settings}.json", "tower_budget", history, rows, **fields)


class RunPlan(NamedTuple):
    base: Path  # the model the run starts from
    settings: str  # names the run folder and the results file
    run_dir: Path
    steps_before: int  # tower steps the base had beyond the recipe's towers (0 unless --after)
    rows_before: dict  # the rows already scored by the run continued (--after), else empty
    fingerprint: str  # of the towers the whole chain started from: the recipe's towers, or its random ones


def plan_run(args: argparse.Namespace, recipe: Path, towers: Path) -> RunPlan:
    """Where this run starts, what it is called and where it is kept: a continuation of the recipe's towers, of a
    previous run of this script (--after), or the tower stage again from the recipe's random towers (--from-init)."""
    if args.from_init and args.after:
        raise SystemExit("--from-init and --after: choose one (a run from the random towers, or a continuation)")
    settings = f"{args.steps}steps-batch{args.batch}-lr{args.lr:g}" + ("-bf16" if args.precision == "bf16" else "")
    base, steps_before, rows_before = towers, 0, {}
    if args.from_init:  # the recipe's stage 4 again with these settings, from its random towers
        base = recipe / "init"
        settings = f"init-{settings}"
    fingerprint = towers_fingerprint(base)
    if args.after:  # the previous run's last checkpoint, and its rows as scored then
        previous_results = RESULTS / f"tower_budget-{args.after}.json"
        if not previous_results.is_file():
            raise SystemExit(f"--after {args.after}: {previous_results} is missing; run that setting first")
        previous = json.loads(previous_results.read_text())
        steps_before = max(int(label[1:].split()[0]) for label in previous["rows"] if label.startswith("+"))
        base = checkpoint_folder(recipe / "runs" / f"towers-more-{args.after}", own_steps(args.after))
        if not base.is_dir():
            raise SystemExit(f"--after {args.after}: its last checkpoint {base} is missing")
        rows_before = previous["rows"]  # the truth, the real clips, the pretrained towers, and its checkpoints
        settings = f"{args.after}+{settings}"
    if results_from_other_towers(RESULTS / f"tower_budget-{settings}.json", fingerprint):
        settings += f"-towers{fingerprint[:8]}"
    run_dir = recipe / "runs" / (f"towers-{settings}" if args.from_init else f"towers-more-{settings}")
    return RunPlan(base, settings, run_dir, steps_before, rows_before, fingerprint)


def own_steps(settings: str) -> int:
    """The steps the run with these settings trained itself, which number its checkpoints: the last continuation's
    ("2400steps-batch16-lr0.001+1200steps-batch16-lr0.001-bf16" -> 1200), not the total since the recipe's towers."""
    last = settings.split("+")[-1]
    if "steps-" not in last or not last.split("steps-")[0].isdigit():
        raise SystemExit(f"--after {settings}: not this script's settings (expected e.g. 2400steps-batch16-lr0.001)")
    return int(last.split("steps-")[0])


def own_steps_of(checkpoint: Path) -> int:
    """The step a checkpoint folder was saved at (checkpoint-003600 -> 3600)."""
    return int(checkpoint.name.split("-")[1])


def results_from_other_towers(results: Path, fingerprint: str) -> bool:
    """Whether `results` exists and was measured from other towers (a file without a fingerprint predates them)."""
    return results.is_file() and json.loads(results.read_text()).get("towers_fingerprint") != fingerprint


if __name__ == "__main__":
    main()
