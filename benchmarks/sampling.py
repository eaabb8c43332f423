"""Joint sampling speed: BridgeDiTPipeline (no bridge, native schedule) against WanPipeline + StableAudioPipeline
run one after the other, with the same sizes, steps, guidance and prompts, in one run on this machine.

    .venv/bin/python benchmarks/sampling.py            # prints a table, writes benchmarks/results/sampling.json

"same work": the joint pipeline denoises Stable Audio's whole window, as StableAudioPipeline does.
"clip-length audio": the joint pipeline's default, audio latents of the clip's own length. For Stable Audio
Open that is less work (117 instead of 1,024 frames for 5.4 s); for the tiny DiT here it is more (2.2 s at
4 kHz / hop 8 = 1,100 frames against its 256-frame window), so only "same work" compares like with like.
Each configuration runs `--repeats` times, interleaved; medians are reported. Goal: ratio <= 1.0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers.utils import logging as diffusers_logging  # noqa: E402

from bridgedit import BridgeDiTPipeline, tiny  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "sampling.json"
VIDEO_PROMPT, AUDIO_PROMPT = "a red ball bounces on a wooden floor", "a dull wooden thud"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--layers", type=int, default=4, help="blocks per tiny tower")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    diffusers_logging.disable_progress_bar()
    torch.manual_seed(0)

    video_pipe = tiny.wan_pipeline(num_layers=args.layers, seed=0)
    audio_pipe = tiny.stable_audio_pipeline(num_layers=args.layers, seed=1)
    video_pipe.set_progress_bar_config(disable=True)
    audio_pipe.set_progress_bar_config(disable=True)
    joint = BridgeDiTPipeline.from_pipes(video_pipe, audio_pipe)  # shares the very same modules
    window = audio_pipe.transformer.config.sample_size
    seconds = args.frames / 15.0
    max_seconds = window * 8 / audio_pipe.vae.config.sampling_rate
    size = dict(height=args.height, width=args.width, num_frames=args.frames)
    text = dict(max_sequence_length=tiny.TINY_MAX_TEXT_TOKENS)

    def separate():
        video_pipe(VIDEO_PROMPT, **size, num_inference_steps=args.steps, guidance_scale=6.0, output_type="np", **text)
        audio_pipe(
            AUDIO_PROMPT,
            num_inference_steps=args.steps,
            guidance_scale=7.0,
            audio_end_in_s=min(seconds, max_seconds),
            generator=torch.Generator().manual_seed(0),
        )

    def joint_same_work():
        audio_latents = torch.randn(1, audio_pipe.transformer.config.in_channels, window)
        joint(
            VIDEO_PROMPT,
            AUDIO_PROMPT,
            **size,
            num_inference_steps=args.steps,
            schedule="native",
            audio_seconds=min(seconds, max_seconds),
            audio_latents=audio_latents,
            progress=False,
            generator=torch.Generator().manual_seed(0),
            **text,
        )

    def joint_clip_length():
        joint(
            VIDEO_PROMPT,
            AUDIO_PROMPT,
            **size,
            num_inference_steps=args.steps,
            schedule="native",
            progress=False,
            generator=torch.Generator().manual_seed(0),
            **text,
        )

    runs = {"separate": separate, "joint_same_work": joint_same_work, "joint_clip_length": joint_clip_length}
    for run in runs.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(values) for name, values in times.items()}
    result = {
        "benchmark": "sampling",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "config": {**vars(args), "out": str(args.out), "audio_window_frames": window, "guidance": [6.0, 7.0]},
        "seconds_median": medians,
        "seconds_all": times,
        "ratio_same_work": medians["joint_same_work"] / medians["separate"],
        "ratio_clip_length": medians["joint_clip_length"] / medians["separate"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'run':<22}{'median s':>10}")
    for name, value in medians.items():
        print(f"{name:<22}{value:>10.3f}")
    print(f"ratio joint / separate (same work):        {result['ratio_same_work']:.3f}")
    print(f"ratio joint / separate (clip-length audio): {result['ratio_clip_length']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
