"""Do bridges that know where a video token is carry bounces (issue #46)? The demo recipe's bridge stage trained
again on the bundled model's towers, with `BridgeConfig.space_encoding` on (or off, the control), then the bounce
diagnosis on the result.

    python experiments/synthetic/bridge_space.py --out outputs/bridge-space [--off]
        # about 20 minutes of training on 2 cores, then python experiments/synthetic/bounce_diagnosis.py on the model
        # (results/bounce_diagnosis-space-encoding.json, or -control.json with --off)

Resumable: the world, the latent cache and the bridge run live in OUT and are reused.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from bridgedit.generation import BUNDLED_MODEL
from bridgedit.synthetic.recipe import RecipeSettings, make_world, train_bridges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--towers", type=Path, default=BUNDLED_MODEL, help="a model folder whose towers to start from")
    parser.add_argument("--off", action="store_true", help="the control: the recipe's bridges, no space encoding")
    args = parser.parse_args()
    settings = RecipeSettings.of_model(args.towers)
    settings = replace(settings, bridge={**settings.bridge, "space_encoding": not args.off})
    name = "control" if args.off else "space-encoding"
    dataset = make_world(args.out, settings)
    model = train_bridges(args.out, dataset, args.towers, settings, name=f"bridges-{name}", cache=args.out / "cache")
    diagnosis = Path(__file__).with_name("bounce_diagnosis.py")
    command = [sys.executable, str(diagnosis), "--model", str(model), "--world", str(dataset)]
    subprocess.run([*command, "--results-name", f"bounce_diagnosis-{name}"], check=True)


if __name__ == "__main__":
    main()
