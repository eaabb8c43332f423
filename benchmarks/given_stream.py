"""Sound for a given video, video for a given sound: does the bundled demo model place sound on a real video's events?

    python benchmarks/given_stream.py [--world DIR]    # about 15 minutes on 2 cores

The bundled demo model generates the audio for each of the synthetic world's 32 held-out real videos (held clean, its
training's hold), and the video for each held-out real soundtrack, at its own generation settings. Scored by the
world's event-level sync (docs/synthetic.md) against: the same model with its bridges switched off (the same towers
and trained blocks, fusion "none": the text alone places the sound), and a per-clip chance level (each clip's real
stream against every other clip's generated one). The world is made again from the model's recipe (`recipe.json`:
seed, clip counts; deterministic), unless --world names one made before. Writes benchmarks/results/given_stream.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bridgedit.config import BridgeConfig, ModelConfig
from bridgedit.data.manifest import load_manifest
from bridgedit.generation import BUNDLED_MODEL
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic.recipe import model_world
from bridgedit.synthetic.scoring import NEXT_TO_REAL, paired_lead, score_next_to_real

RESULTS = Path(__file__).parent / "results"


def bridges_off(pipe: BridgeDiTPipeline) -> BridgeDiTPipeline:
    """The same towers (trained blocks included) with no bridges."""
    config = ModelConfig(bridge=BridgeConfig(fusion="none"), trainable=pipe.model.config.trainable)
    return BridgeDiTPipeline.from_pipes(
        pipe.video_pipe, pipe.audio_pipe, config, generation_defaults=pipe.generation_defaults
    )


def summary(statistics: dict) -> dict:
    keys = ("sync", "sync_chance", "video_events", "audio_events")
    return {key: statistics[key] for key in keys} | {
        "sync_above_chance": statistics["sync"] - statistics["sync_chance"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL))
    parser.add_argument("--world", type=Path, help="a world made before by this script or the recipe (its dataset)")
    args = parser.parse_args()

    started = time.perf_counter()
    with model_world(args.model, args.world) as dataset:
        records = load_manifest(dataset, split="test")
        model = BridgeDiTPipeline.from_pretrained(args.model, dtype=torch.float32)
        rows = {
            "bridges": score_next_to_real(model, dataset, records),
            "bridges off": score_next_to_real(bridges_off(model), dataset, records),
        }
    result = {
        "benchmark": "given_stream",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": Path(args.model).name,
        "held_out_clips": len(records),
        "hold": model.generation_defaults.get("hold", "clean"),
        "seconds": time.perf_counter() - started,
    }
    print(f"{'':<40}{'sync':>8}{'chance':>8}{'above':>8}   lead of the bridges over bridges off (per clip)")
    for direction in NEXT_TO_REAL:
        lead = paired_lead([rows["bridges"]], [rows["bridges off"]], direction)
        result[direction] = {name: summary(row[direction]) for name, row in rows.items()} | {"lead": lead}
        for name in rows:
            row = result[direction][name]
            line = f"{direction + ', ' + name:<40}{row['sync']:>8.3f}{row['sync_chance']:>8.3f}"
            print(line + f"{row['sync_above_chance']:>+8.3f}")
        print(
            f"{'':<64}{lead['mean']:+.3f} ± {lead['standard_error']:.3f} (p = {lead['p_value']:.2g}, "
            f"{lead['pairs']} clips)"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "given_stream.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
