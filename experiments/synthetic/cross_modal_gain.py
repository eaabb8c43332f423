"""Do the bridges use the other stream? The cross-modal gain (bridgedit.training.diagnostics) of models or training
checkpoints on the synthetic world's held-out clips: each stream's loss next to the matching clean other stream
against next to another clip's, per noise level. Pass a run's checkpoints in order to see when the bridges start.

    python experiments/synthetic/cross_modal_gain.py --recipe outputs/demo CHECKPOINT [...] [--name NAME]
        # writes experiments/synthetic/results/NAME.json (default cross_modal_gain)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bridgedit.atomic import write_text_atomic
from bridgedit.training.diagnostics import cross_modal_gain_on_cache

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model folders or training checkpoints")
    parser.add_argument("--recipe", default="outputs/demo", help="the demo recipe's output folder (dataset and cache)")
    parser.add_argument("--captions", choices=("hvgc", "shared"), default="hvgc")
    parser.add_argument("--name", default="cross_modal_gain", help="write experiments/synthetic/results/NAME.json")
    args = parser.parse_args()

    recipe = Path(args.recipe)
    rows = {}
    print(f"{'model':<72}{'stream':>7}" + "".join(f"{'t=' + str(t):>16}" for t in (0.5, 0.7, 0.85, 0.95)))
    for model in args.models:
        gain = cross_modal_gain_on_cache(
            model, recipe / "dataset", recipe / "cache" / "bridges", captions=args.captions
        )
        rows[model] = gain
        for stream in ("audio", "video"):
            cells = "".join(f"{100 * e['gain'] / e['mismatched']:>9.2f} % gain" for e in gain[stream]["levels"])
            print(f"{model:<72}{stream:>7}{cells}")
    summary = {
        "benchmark": "cross_modal_gain",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "models": rows,
    }
    path = RESULTS / f"{args.name}.json"
    write_text_atomic(path, json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
