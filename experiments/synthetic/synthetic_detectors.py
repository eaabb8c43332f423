"""Are the synthetic world's detectors right? Sync scores on the world's own clips, in sync and with the audio
shifted, next to AV-Align's generic detectors on the same clips; and how often the faithfulness checks read
each clip's colour, shape and material correctly. Two worlds: 4 s clips with up to 4 events, and the demo
model's own clips (17 frames, 1.13 s, up to 3 events).

    python experiments/synthetic/synthetic_detectors.py        # writes experiments/synthetic/results/synthetic_detectors.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bridgedit.evaluation.av_align import av_align
from bridgedit.synthetic import WorldSettings, render_clip, sync_score
from bridgedit.synthetic.faithfulness import faithfulness
from bridgedit.synthetic.world import draw_scene

RESULTS = Path(__file__).parent / "results" / "synthetic_detectors.json"
CLIPS, SHIFT_SECONDS = 50, 0.3


def measure(world: WorldSettings, clips: int) -> dict:
    scores: dict[str, list[float]] = {
        k: []
        for k in (
            "sync",
            "sync_shifted",
            "av_align",
            "av_align_shifted",
            "av_align_original",
            "av_align_original_shifted",
        )
    }
    correct: dict[str, list[bool]] = {"colour": [], "shape": [], "material": []}
    for index in range(clips):
        rng = np.random.default_rng([2026, index])
        scene = draw_scene(rng, world)
        frames, audio = render_clip(scene, world, rng)
        for attribute, right in faithfulness(frames, audio, world.sample_rate, asdict(scene)).items():
            correct[attribute].append(right)
        shifted = np.roll(audio, int(SHIFT_SECONDS * world.sample_rate))
        for suffix, sound in (("", audio), ("_shifted", shifted)):
            scores["sync" + suffix].append(sync_score(frames, world.fps, sound, world.sample_rate))
            scores["av_align" + suffix].append(av_align(frames, world.fps, sound, world.sample_rate))
            scores["av_align_original" + suffix].append(
                av_align(frames, world.fps, sound, world.sample_rate, variant="original")
            )
    summary = {k: {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in scores.items()}
    summary.update({f"{k}_accuracy": {"mean": float(np.mean(v)), "std": float(np.std(v))} for k, v in correct.items()})
    return {"clips": clips, "seconds": world.seconds, "max_events": world.max_events, "scores": summary}


def main() -> None:
    worlds = {"long": WorldSettings(seconds=4 + 1 / 15, max_events=4), "demo": WorldSettings()}
    results = {name: measure(world, CLIPS) for name, world in worlds.items()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "synthetic_detectors",
                "command": "python " + Path(sys.argv[0]).as_posix(),
                "shift_seconds": SHIFT_SECONDS,
                "worlds": results,
            },
            indent=2,
        )
        + "\n"
    )
    for name, result in results.items():
        print(
            f"{name} world: {result['clips']} clips of {result['seconds']:.2f} s, up to {result['max_events']} events"
        )
        for score, value in result["scores"].items():
            print(f"  {score:<28}{value['mean']:.3f} ± {value['std']:.3f}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
