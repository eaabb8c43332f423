"""Where the fusion ablation's time goes on a CPU: one bridge-stage training step of the demo model, in float32 and
under bf16 autocast, side by side.

    python experiments/synthetic/bridge_step_cost.py            # one thread, as each of the ablation's two workers; about 6 min

The ablation (experiments/synthetic/ablation.py) trains 21 runs of 1,200 bridge-stage steps and is sized by their cost. This
script builds the demo recipe's model at its real shapes (random weights: the cost does not depend on them), with
the bridge stage's freezing policy (bridges + the last block of each tower), and for each fusion kind times a
training step at the ablation's batch (8): forward, backward and AdamW, as `bridgedit train` runs it
(`diffusion_loss`), in each precision: "fp32"; "bf16" as `bridgedit train` runs bf16 mixed precision on a CPU, with
the weights kept in float32 (autocast) and attention as bf16 matrix products (bridgedit.cpu_attention; the ablation's
`--precision bf16`); and "bf16-fused-attention", the same with PyTorch's fused attention kernel, as before
cpu_attention. It splits each step's time by op (torch.profiler, self time) into matrix products (mm, addmm, bmm),
attention (PyTorch's fused CPU attention; as matrix products, attention's products count as matrix products and its
softmax as other) and everything else, counts the matrix products' FLOPs (torch.utils.flop_counter) and their rate
inside the step, next to the rate of one large square product (2,048^3) in the same dtype on the same threads.

bf16 is only faster on CPUs that multiply it in hardware (AVX512-BF16 or AMX; `native_bf16` in the result); elsewhere
it is emulated. Writes experiments/synthetic/results/bridge_step_cost.json. The ablation runs two one-thread workers at once;
two copies of this script side by side (`--results-name` apart) measure a step as the workers see it, sharing the
memory system:

    python experiments/synthetic/bridge_step_cost.py --results-name bridge_step_cost-side-by-side-1 &
    python experiments/synthetic/bridge_step_cost.py --results-name bridge_step_cost-side-by-side-2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.profiler import profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bridgedit.atomic import write_text_atomic  # noqa: E402
from bridgedit.conditioning import audio_conditions, video_conditions  # noqa: E402
from bridgedit.config import FUSION_KINDS, ModelConfig, TrainableConfig  # noqa: E402
from bridgedit.cpu_attention import MatmulAttention  # noqa: E402
from bridgedit.data.dataset import CachedBatch  # noqa: E402
from bridgedit.pipeline import BridgeDiTPipeline  # noqa: E402
from bridgedit.synthetic import recipe  # noqa: E402
from bridgedit.training.trainer import cpu_has_native_bf16, diffusion_loss  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: aten ops counted as matrix products (by torch.profiler and torch.utils.flop_counter), and the mark of attention
#: ops in the profiler's names; every other op is "other"
MATRIX_OPS = ("mm", "addmm", "bmm", "baddbmm")
ATTENTION_MARK = "scaled_dot_product"
#: precision name -> (the autocast dtype its steps run under (None: float32, no autocast), whether attention runs as
#: matrix products (bridgedit.cpu_attention, as `bridgedit train` runs it on a CPU) or in PyTorch's fused kernel)
PRECISIONS = {"fp32": (None, False), "bf16-fused-attention": (torch.bfloat16, False), "bf16": (torch.bfloat16, True)}
#: the demo world's clip and its generation defaults; its audio at 4 kHz through a hop of 16
DEMO = recipe.RecipeSettings()
GENERATION = DEMO.generation_defaults
SECONDS = GENERATION["num_frames"] / GENERATION["fps"]
TEXT_TOKENS = 24  # caption tokens per tower, about the world's captions' length (the cost barely depends on it)


def demo_model_pipeline(fusion: str) -> BridgeDiTPipeline:
    """The demo recipe's towers, codecs and bridges (random weights) with the bridge stage's freezing policy."""
    from diffusers import AutoencoderOobleck

    from bridgedit.synthetic.patch_codec import PatchVideoCodec

    towers = recipe.initial_pipeline(
        PatchVideoCodec(**DEMO.video_codec),
        AutoencoderOobleck(**recipe.DEMO_OOBLECK_VAE),
        seed=0,
        generation_defaults=GENERATION,
    )
    config = ModelConfig(
        bridge=replace(recipe.DEMO_BRIDGE, fusion=fusion), trainable=TrainableConfig(**recipe.BRIDGE_STAGE_TRAINABLE)
    )
    return BridgeDiTPipeline.from_pipes(
        towers.video_pipe,
        towers.audio_pipe,
        config,
        video_source=None,
        audio_source=None,
        generation_defaults=GENERATION,
    )


def training_step(pipe: BridgeDiTPipeline, batch_size: int, precision: str):
    """A closure running one optimizer step on random latents of the demo world's shapes, in `precision`."""
    model = pipe.model.train()
    autocast_dtype, matmul = PRECISIONS[precision]
    attention = MatmulAttention() if matmul else nullcontext()
    video_codec, audio_codec = pipe.video_pipe.vae, pipe.audio_pipe.vae
    frames, side = (
        GENERATION["num_frames"],
        GENERATION["height"] // DEMO.video_codec["patch_size"],
    )
    audio_length = round(SECONDS * recipe.DEMO_OOBLECK_VAE["sampling_rate"] / audio_codec.hop_length)
    generator = torch.Generator().manual_seed(0)
    batch = CachedBatch(
        video_latents=torch.randn(batch_size, video_codec.config.z_dim, frames, side, side, generator=generator),
        audio_latents=torch.randn(
            batch_size, audio_codec.config.decoder_input_channels, audio_length, generator=generator
        ),
        video_text=[],
        audio_text=[],
        seconds=[SECONDS] * batch_size,
    )
    text_width = pipe.audio_pipe.transformer.config.cross_attention_input_dim
    with torch.no_grad():
        conditions = (
            video_conditions(torch.randn(batch_size, TEXT_TOKENS, recipe.DEMO_WAN_TRANSFORMER["text_dim"])),
            audio_conditions(pipe.audio_pipe, torch.randn(batch_size, TEXT_TOKENS, text_width), batch.seconds),
        )
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3)
    settings = {"distribution": "uniform", "coupling": "independent"}

    def step() -> None:
        with (
            torch.autocast("cpu", dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None),
            attention,
        ):
            loss, _ = diffusion_loss(model, pipe, batch, conditions, generator, settings, torch.device("cpu"))
            loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def large_matrix_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one (size x size) @ (size x size) product in `dtype` on this thread count, median of `repeats`."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9


def step_cost(step, repeats: int) -> dict:
    for _ in range(3):  # warm-up: allocator, oneDNN primitives
        step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    with profile() as profiler:
        for _ in range(repeats):
            step()
    by_kind = {"matrix products": 0.0, "attention": 0.0, "other": 0.0}
    for event in profiler.key_averages():
        kind = (
            "matrix products"
            if event.key.removeprefix("aten::") in MATRIX_OPS
            else "attention"
            if ATTENTION_MARK in event.key
            else "other"
        )
        by_kind[kind] += event.self_cpu_time_total / 1e6 / repeats  # seconds per step
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_flop_counts()["Global"]
    matrix_flops = sum(count for op, count in flops.items() if str(op).split(".")[1] in MATRIX_OPS)  # aten.mm.default
    profiled = sum(by_kind.values())
    return {
        "seconds_per_step": statistics.median(times),
        "share_of_op_time": {kind: seconds / profiled for kind, seconds in by_kind.items()},
        "matrix_gflop_per_step": matrix_flops / 1e9,
        "matrix_gflop_per_s_in_step": matrix_flops / 1e9 / by_kind["matrix products"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the ablation's workers use one each)")
    parser.add_argument("--batch", type=int, default=8, help="the ablation's bridge batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fusions", default=",".join(FUSION_KINDS))
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument(
        "--results-name",
        default="bridge_step_cost",
        help="writes experiments/synthetic/results/NAME.json (two copies side by side: give each its own)",
    )
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if unknown := set(precisions) - set(PRECISIONS):
        raise SystemExit(f"--precisions: unknown {', '.join(sorted(unknown))} (choose from {', '.join(PRECISIONS)})")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtypes = {
        str(dtype or torch.float32).removeprefix("torch."): dtype or torch.float32
        for precision, (dtype, _) in PRECISIONS.items()
        if precision in precisions
    }
    large = {name: large_matrix_rate(dtype) for name, dtype in dtypes.items()}
    print(
        f"native bf16: {cpu_has_native_bf16()};  one {args.threads}-thread 2048^3 product: "
        + ", ".join(f"{name} {rate:.1f} GFLOP/s" for name, rate in large.items()),
        flush=True,
    )
    rows = {}
    for fusion in args.fusions.split(","):
        rows[fusion] = {}
        for precision in precisions:
            row = step_cost(training_step(demo_model_pipeline(fusion), args.batch, precision), args.repeats)
            rows[fusion][precision] = row
            shares = ", ".join(f"{kind} {share:.0%}" for kind, share in row["share_of_op_time"].items())
            print(
                f"{fusion:15s} {precision}  {row['seconds_per_step']:.3f} s/step  ({shares});  matrix products "
                f"{row['matrix_gflop_per_step']:.1f} GFLOP at {row['matrix_gflop_per_s_in_step']:.1f} GFLOP/s",
                flush=True,
            )
        if "fp32" in precisions:
            fp32 = rows[fusion]["fp32"]["seconds_per_step"]
            rows[fusion]["speed_up_over_fp32"] = {
                precision: fp32 / rows[fusion][precision]["seconds_per_step"]
                for precision in precisions
                if precision != "fp32"
            }
            print(
                f"{fusion:15s} as fast as fp32: "
                + ", ".join(
                    f"{precision} {ratio:.2f}x" for precision, ratio in rows[fusion]["speed_up_over_fp32"].items()
                ),
                flush=True,
            )
    result = {
        "threads": args.threads,
        "batch": args.batch,
        "repeats": args.repeats,
        "native_bf16": cpu_has_native_bf16(),
        "large_product_gflop_per_s": large,
        "fusions": rows,
        "torch": torch.__version__,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "command": "python " + " ".join(sys.argv),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{args.results_name}.json"
    write_text_atomic(path, json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
