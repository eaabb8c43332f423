"""One sounding clip end to end, eager against compiled and at each memory level, side by side in one process.

    python benchmarks/generation_speed.py                         # the bundled demo model (any machine, seconds)
    python benchmarks/generation_speed.py --model released --size full   # a GPU: the released architecture at real
                                                                  # size, random weights (official_generation.py's)

For each variant, the median of --repeats clips (5): seconds per stage (text encoding, sampling, VAE decodes, mux), seconds per sampling step (median,
after the first), peak memory (CUDA allocator; on a CPU the process's peak RSS, which only grows across variants),
and for compiled blocks and offloaded weights the first clip's time apart from the timed clip's. Variants:
"eager"; "balanced" (the memory level: text encoders off the device after encoding, Wan's VAE in tiles);
"step_cache" (first-block caching across steps at threshold 0.1, `pipe(..., step_cache=0.1)`); "low" (the memory
level: also the towers' and bridges' weights kept in CPU memory, each layer's brought on as it runs); "compiled"
(`bridgedit.acceleration.compile_blocks`: each repeated block class of both towers and the bridges, regional
compilation). "low" and "compiled" change the pipeline for good: each runs on a pipeline of its own, loaded after
the shared one is freed. At real size with 50 steps, the ratio to the physical limit (29.1 PFLOP a clip at 790 dense bf16 TFLOP/s)
is added. Writes benchmarks/results/generation_speed-<model>-<size>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from official_generation import (  # this folder's script (run from anywhere as a file)
    AUDIO_PROMPT,
    PEAK_BF16_FLOPS,
    PHYSICAL_LIMIT_FLOP,
    SIZES,
    VIDEO_PROMPT,
    StageTimer,
    build_pipeline,
    peak_memory_gib,
)

from bridgedit import generation
from bridgedit.acceleration import apply_memory_level, compile_blocks
from bridgedit.media import write_sounding_video
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.release import RELEASE_GENERATION_DEFAULTS

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("eager", "balanced", "step_cache", "low", "compiled")
STEP_CACHE_THRESHOLD = 0.1
#: variants that change a pipeline for good: each on a fresh one, after the others
IRREVERSIBLE = ("low", "compiled")


def load(model: str, size: str, device: torch.device, dtype: torch.dtype):
    """(pipeline, call settings): the bundled demo model at its own defaults, or the released architecture."""
    if model == "demo":
        pipe = BridgeDiTPipeline.from_pretrained(generation.default_model(), dtype=dtype).to(device)
        settings = generation.settings_with_model_defaults({}, pipe.generation_defaults)
        keys = ("height", "width", "num_frames", "fps", "num_inference_steps", "video_guidance", "audio_guidance")
        return pipe, {key: getattr(settings, key) for key in keys}
    shape = SIZES[size]
    pipe = build_pipeline(shape, "dca", device, dtype)
    call = {key: RELEASE_GENERATION_DEFAULTS[key] for key in ("fps", "schedule", "max_sequence_length")}
    call.update(
        {key: RELEASE_GENERATION_DEFAULTS[key] for key in ("video_guidance", "audio_guidance", "audio_length_rounding")}
    )
    call.update(
        height=shape["height"], width=shape["width"], num_frames=shape["num_frames"], num_inference_steps=shape["steps"]
    )
    return pipe, call


def one_clip(pipe, call: dict, device: torch.device, **extra) -> dict:
    """Seconds per stage and per step of one clip, and peak memory."""
    timer = StageTimer(device)
    originals = pipe.encode_prompts, pipe.decode_video, pipe.decode_audio
    pipe.encode_prompts = timer.wrap("text_encoding", pipe.encode_prompts)
    pipe.decode_video = timer.wrap("video_decode", pipe.decode_video)
    pipe.decode_audio = timer.wrap("audio_decode", pipe.decode_audio)
    step_ends = []

    def on_step(done, total):
        timer.sync()
        step_ends.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        generate = timer.wrap("generate", pipe)
        start = time.perf_counter()
        output = generate(
            VIDEO_PROMPT,
            AUDIO_PROMPT,
            generator=torch.Generator(device).manual_seed(0),
            progress=False,
            step_callback=on_step,
            **call,
            **extra,
        )
        with tempfile.TemporaryDirectory() as folder:
            timer.wrap("mux", write_sounding_video)(
                Path(folder) / "clip.mp4", output.video[0], output.fps, output.audio[0], output.sample_rate
            )
    finally:
        pipe.encode_prompts, pipe.decode_video, pipe.decode_audio = originals
    seconds = timer.seconds
    sampling = seconds["generate"] - seconds["text_encoding"] - seconds["video_decode"] - seconds["audio_decode"]
    steps = [later - earlier for earlier, later in zip(step_ends, step_ends[1:])]
    return {
        "clip": seconds["generate"] + seconds["mux"],
        "text_encoding": seconds["text_encoding"],
        "sampling": sampling,
        "first_step": step_ends[0] - start - seconds["text_encoding"] if step_ends else None,
        "median_step_after_the_first": statistics.median(steps) if steps else None,
        "video_decode": seconds["video_decode"],
        "audio_decode": seconds["audio_decode"],
        "mux": seconds["mux"],
        "peak_memory_gib": peak_memory_gib(device),
    }


def median_clip(pipe, call: dict, device: torch.device, repeats: int, **extra) -> dict:
    """`one_clip` `repeats` times; the run with the median clip time, and every run's clip time."""
    runs = sorted((one_clip(pipe, call, device, **extra) for _ in range(repeats)), key=lambda row: row["clip"])
    return {**runs[len(runs) // 2], "clip_each": [row["clip"] for row in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("demo", "released"), default="demo")
    parser.add_argument("--size", choices=tuple(SIZES), default="full" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--repeats", type=int, default=5, help="clips timed per variant; the median clip is kept")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(unknown)}")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    pipe, call = load(args.model, args.size, device, dtype)
    one_clip(pipe, call, device)  # warm-up: allocator, kernels, first-call caches
    rows = {}
    for variant in [v for v in variants if v not in IRREVERSIBLE]:
        extra = apply_memory_level(pipe, "balanced" if variant == "balanced" else "max")
        if variant == "step_cache":
            extra["step_cache"] = STEP_CACHE_THRESHOLD
        rows[variant] = median_clip(pipe, call, device, args.repeats, **extra)
        apply_memory_level(pipe, "max")
        pipe.to(device)  # the text encoders back, after "balanced" moved them off
    for variant in [v for v in variants if v in IRREVERSIBLE]:
        del pipe  # freed first: the variant's peak memory is its own
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        pipe, _ = load(args.model, args.size, device, dtype)
        if variant == "low":
            extra = apply_memory_level(pipe, "low")
        else:
            compile_blocks(pipe)
            extra = {}
        started = time.perf_counter()
        one_clip(pipe, call, device, **extra)  # compilation; the layers' order recorded for prefetching
        first = time.perf_counter() - started
        rows[variant] = {**median_clip(pipe, call, device, args.repeats, **extra), "first_clip": first}
    eager = rows.get("eager")
    if eager:
        for row in rows.values():
            row["clip_speedup_over_eager"] = eager["clip"] / row["clip"]
            row["sampling_speedup_over_eager"] = eager["sampling"] / row["sampling"]
    result = {
        "benchmark": "generation_speed",
        "model": args.model,
        "size": "the demo model's own" if args.model == "demo" else args.size,
        "call": {key: value for key, value in call.items() if not isinstance(value, str) or len(value) < 40},
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "dtype": str(dtype).removeprefix("torch."),
        "seconds": rows,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    if args.model == "released" and args.size == "full" and call["num_inference_steps"] == 50:
        limit = PHYSICAL_LIMIT_FLOP / PEAK_BF16_FLOPS
        result["physical_limit_seconds"] = limit
        result["ratio_to_physical_limit"] = {variant: row["clip"] / limit for variant, row in rows.items()}
    RESULTS.mkdir(exist_ok=True)
    name = "demo" if args.model == "demo" else f"released-{args.size}"
    path = RESULTS / f"generation_speed-{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
