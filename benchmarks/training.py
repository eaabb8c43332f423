"""Training costs.

    python benchmarks/training.py                 # CPU: cache vs on-the-fly encoding; meta-device memory account
    python benchmarks/training.py --real-step     # also a real-size training step on a GPU (random weights)

1. Steps/s training from the cache against encoding each batch on the fly (decode the clips, run both VAE
   encoders and both text encoders, then the same step), in one run, tiny model, synthetic data.
2. For the real-size preset on the meta device (no weights): bytes of the trainable parameters, their
   gradients and AdamW's two moments (fp32), and of the frozen weights, per trainable policy; and per rank under
   FSDP (configs/accelerate/fsdp.yaml: every parameter, gradient and moment sharded over N ranks, each wrapped
   block gathered whole while it runs, the next one prefetched) for 1, 2, 4 and 8 ranks. Activations are not
   counted (gradient checkpointing keeps them to the blocks' inputs plus one block's).
3. --real-step (GPU): one optimizer step of the real-size BridgeDiT (bf16 autocast, gradient checkpointing,
   batch 1, 832x480x81 + 5.4 s), random weights: seconds per step and peak GPU memory.
Writes benchmarks/results/training.json (or training_real_step.json for 3).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bridgedit.config import TRAINABLE_POLICIES, ModelConfig, TrainableConfig  # noqa: E402
from bridgedit.presets import build_on_meta, get_preset  # noqa: E402

RESULTS = Path(__file__).parent / "results"
REAL = "wan2.1-t2v-1.3b+stable-audio-open-1.0-table5"  # the figures in docs/training.md are of this (Table 5) model
SETTINGS = {"distribution": "uniform", "coupling": "coupled"}


def cache_against_on_the_fly(steps: int, batch_size: int) -> dict:
    from bridgedit import tiny
    from bridgedit.data.cache import _encode_clip, cache_dataset, load_cache_info
    from bridgedit.data.dataset import CachedBatch, CachedClips
    from bridgedit.synthetic import make_dataset
    from bridgedit.training.trainer import batch_conditions, diffusion_loss, step_generator

    work = Path(tempfile.mkdtemp(prefix="bridgedit-bench-"))
    make_dataset(work / "dataset", clips=batch_size * 4, seed=0)
    pipe = tiny.bridgedit_pipeline(seed=0)
    cache_dataset(pipe, work / "dataset", work / "cache", model="tiny", max_sequence_length=32, progress=False)
    clips = CachedClips(work / "dataset", work / "cache")
    info = load_cache_info(work / "cache")
    model = pipe.model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    no_drop = torch.zeros(batch_size, dtype=torch.bool)

    def on_the_fly(indices):
        encoded = [_encode_clip(pipe, work / "dataset", clips.records[i], 32) for i in indices]
        return CachedBatch(
            video_latents=torch.stack([e["video_latents"] for e in encoded]),
            audio_latents=torch.stack([e["audio_latents"] for e in encoded]),
            video_text=[e["video_text"] for e in encoded],
            audio_text=[e["audio_text"] for e in encoded],
            seconds=[clips.records[i]["duration"] for i in indices],
        )

    def step(batch, index):
        conditions = batch_conditions(pipe, batch, no_drop, no_drop, clips.null_video_text, info, torch.device("cpu"))
        loss, _ = diffusion_loss(model, pipe, batch, conditions, step_generator(0, index, 0, 0), SETTINGS, "cpu")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    sources = {"cache": clips.batch, "on_the_fly": on_the_fly}
    timings = {name: [] for name in sources}
    for index in range(steps + 1):  # the first round is a warm-up
        indices = [(index * batch_size + j) % len(clips) for j in range(batch_size)]
        for name, load in sources.items():  # interleaved, so both see the same machine state
            started = time.perf_counter()
            step(load(indices), index)
            if index:
                timings[name].append(time.perf_counter() - started)
    steps_per_s = {name: len(t) / sum(t) for name, t in timings.items()}
    return {
        "batch_size": batch_size,
        "steps": steps,
        "steps_per_s": steps_per_s,
        "speedup_cache_over_on_the_fly": steps_per_s["cache"] / steps_per_s["on_the_fly"],
    }


def memory_account() -> dict:
    """Bytes a training run holds beyond activations, for each trainable policy, at real size."""
    preset = get_preset(REAL)
    account = {}
    for policy in TRAINABLE_POLICIES:
        config = ModelConfig(bridge=preset.model.bridge, trainable=replace(TrainableConfig(), policy=policy))
        model = build_on_meta(preset, config)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        gib = 2**30
        account[policy] = {
            "trainable_parameters": trainable,
            "frozen_parameters": frozen,
            "trainable_fp32_gib": 4 * trainable / gib,
            "gradients_fp32_gib": 4 * trainable / gib,
            "adamw_moments_fp32_gib": 8 * trainable / gib,
            "frozen_bf16_gib": 2 * frozen / gib,
            "frozen_fp32_gib": 4 * frozen / gib,
            "total_with_frozen_bf16_gib": (16 * trainable + 2 * frozen) / gib,
            "fsdp_per_rank_gib": fsdp_per_rank(model),
        }
    return account


#: the blocks configs/accelerate/fsdp.yaml wraps (fsdp_transformer_layer_cls_to_wrap)
FSDP_WRAPPED = ("WanTransformerBlock", "StableAudioDiTBlock", "BridgeBlock")


def fsdp_per_rank(model, ranks=(1, 2, 4, 8)) -> dict[int, float]:
    """GiB each rank holds under FULL_SHARD: its shard of every parameter (trainable ones in fp32 with fp32 gradients
    and AdamW moments, 16 bytes each; frozen ones in bf16, 2 bytes), plus two wrapped blocks gathered whole (the one
    running and the one prefetched: the largest, in bf16 for frozen and fp32 for trainable)."""

    def state_bytes(parameters) -> int:
        return sum((16 if p.requires_grad else 2) * p.numel() for p in parameters)

    def gathered_bytes(block) -> int:
        return sum((4 if p.requires_grad else 2) * p.numel() for p in block.parameters())

    blocks = sorted((gathered_bytes(m) for m in model.modules() if type(m).__name__ in FSDP_WRAPPED), reverse=True)
    total = state_bytes(model.parameters())
    return {n: (total / n + (sum(blocks[:2]) if n > 1 else 0)) / 2**30 for n in ranks}


def real_step(repeats: int) -> dict:
    """One optimizer step at real size on a GPU with random weights (bf16 autocast, checkpointing)."""
    from diffusers import StableAudioDiTModel, WanTransformer3DModel

    from bridgedit.describe import meta_inputs
    from bridgedit.model import BridgeDiT

    device = torch.device("cuda")
    preset = get_preset(REAL)
    with torch.device(device):
        model = BridgeDiT(
            WanTransformer3DModel(**preset.video_transformer),
            StableAudioDiTModel(**preset.audio_transformer),
            preset.model,
        )
    # frozen weights in bf16 (as train.frozen_dtype: bfloat16), trainable weights, gradients and AdamW moments in fp32
    model.cast_frozen_parameters(torch.bfloat16)
    model.enable_gradient_checkpointing()
    model.train()
    lengths = preset.lengths()
    meta = meta_inputs(preset, lengths)

    def real(t):
        return torch.randn(t.shape, device=device)

    video_latents, audio_latents, _, _, video_conditions, audio_conditions = meta
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5, betas=(0.9, 0.95))
    times = []
    torch.cuda.reset_peak_memory_stats()
    for index in range(repeats + 1):
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred_video, pred_audio = model(
                real(video_latents),
                real(audio_latents),
                torch.full((1,), 500.0, device=device),
                torch.full((1,), 0.5, device=device),
                type(video_conditions)(real(video_conditions.text_states)),
                type(audio_conditions)(real(audio_conditions.text_states), real(audio_conditions.global_states)),
            )
            loss = pred_video.float().square().mean() + pred_audio.float().square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if index:
            times.append(time.perf_counter() - started)
    return {
        "device": torch.cuda.get_device_name(),
        "seconds_per_step": sum(times) / len(times),
        "steps": len(times),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "video_tokens": lengths.video_tokens,
        "audio_tokens": lengths.audio_tokens,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--real-step", action="store_true", help="time a real-size step on the GPU instead")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.real_step:
        result = {"benchmark": "training_real_step", "command": command, **real_step(args.repeats)}
        out = RESULTS / "training_real_step.json"
        print(
            f"{result['device']}: {result['seconds_per_step']:.2f} s per step, peak {result['peak_gib']:.1f} GiB "
            f"({result['trainable_parameters'] / 1e6:.1f} M trainable)"
        )
    else:
        speed = cache_against_on_the_fly(args.steps, args.batch_size)
        memory = memory_account()
        result = {
            "benchmark": "training",
            "command": command,
            "cpu_threads": torch.get_num_threads(),
            "speed": speed,
            "memory_real_size": memory,
        }
        out = RESULTS / "training.json"
        print(
            f"steps/s (tiny, batch {args.batch_size}): cache {speed['steps_per_s']['cache']:.2f}, "
            f"on the fly {speed['steps_per_s']['on_the_fly']:.2f}: {speed['speedup_cache_over_on_the_fly']:.2f}x"
        )
        print(
            f"{'policy':<22}{'trainable M':>12}{'params':>8}{'grads':>8}{'AdamW':>8}{'frozen bf16':>13}{'total GiB':>11}"
        )
        for policy, m in memory.items():
            print(
                f"{policy:<22}{m['trainable_parameters'] / 1e6:>12.1f}{m['trainable_fp32_gib']:>8.2f}"
                f"{m['gradients_fp32_gib']:>8.2f}{m['adamw_moments_fp32_gib']:>8.2f}{m['frozen_bf16_gib']:>13.2f}"
                f"{m['total_with_frozen_bf16_gib']:>11.2f}"
            )
        ranks = list(next(iter(memory.values()))["fsdp_per_rank_gib"])
        print(
            "GiB per rank under FSDP (parameters, gradients, AdamW; activations apart): " + ", ".join(map(str, ranks))
        )
        for policy, m in memory.items():
            print(f"{policy:<22}" + "".join(f"{m['fsdp_per_rank_gib'][n]:>8.2f}" for n in ranks))
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
