"""Text to sounding video on the world's held-out captions: the event-level sync of a model's samples (both streams
generated, the model's own guidance), against its chance level (each clip's frames against every other clip's
audio), over all clips and by kind (bouncing object, lamp). Issue #46's second figure.

    python experiments/synthetic/joint_sync.py [--model DIR] [--world DIR] [--results-name NAME]
        # about 3 minutes for the first demo model on 2 cores; writes results/NAME.json (default joint_sync)
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
from bridgedit.data.manifest import load_manifest
from bridgedit.generation import BUNDLED_MODEL
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic.recipe import model_world
from bridgedit.synthetic.scoring import HELD_OUT_SEED, score_model
from bridgedit.synthetic.world import LAMP

RESULTS = Path(__file__).parent / "results"


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL))
    parser.add_argument("--world", type=Path, help="a world made before by the recipe or a benchmark (its dataset)")
    parser.add_argument("--results-name", default="joint_sync", help="writes results/NAME.json")
    args = parser.parse_args()
    started = time.perf_counter()
    pipe = BridgeDiTPipeline.from_pretrained(args.model, dtype=torch.float32)
    with model_world(args.model, args.world) as dataset:
        records = load_manifest(dataset, split="test")
    per_clip, statistics = score_model(pipe, records, seed=HELD_OUT_SEED)
    kinds = np.array(["lamp" if record["scene"]["shape"] == LAMP else "bounce" for record in records])
    sync, chance = np.array(statistics["sync_per_clip"]), np.array(statistics["sync_chance_per_clip"])
    rows = {"all": np.ones(len(records), bool), **{kind: kinds == kind for kind in ("bounce", "lamp")}}
    table = {
        name: {
            "clips": int(members.sum()),
            "sync": float(sync[members].mean()),
            "chance": float(chance[members].mean()),
        }
        for name, members in rows.items()
    }
    print(f"{'':<8}{'clips':>6}{'sync':>7}{'chance':>8}")
    for name, row in table.items():
        print(f"{name:<8}{row['clips']:>6}{row['sync']:>7.3f}{row['chance']:>8.3f}")
    print(f"events per clip: video {statistics['video_events']:.2f}, audio {statistics['audio_events']:.2f}")
    result = {
        "experiment": "joint_sync",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": str(args.model),
        "guidance": {key: pipe.generation_defaults.get(key) for key in ("video_guidance", "audio_guidance")},
        "table": table,
        "statistics": statistics,
        "per_clip": per_clip,
        "seconds": time.perf_counter() - started,
    }
    path = RESULTS / f"{args.results_name}.json"
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
