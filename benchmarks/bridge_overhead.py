"""Wall-clock cost of each fusion kind in one joint forward, at a preset's default sizes, with random weights.

    python benchmarks/bridge_overhead.py                      # real-size preset; needs a GPU (bf16)
    python benchmarks/bridge_overhead.py --preset tiny        # anywhere, in seconds

Complements `bridgedit describe` (FLOPs): the same forward, timed. Batch 2 (a guided step's conditional
and null halves), no gradients; every fusion kind shares the same tower weights; medians of --repeats
timed forwards after warm-up. Writes benchmarks/results/bridge_overhead[_<preset>].json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import StableAudioDiTModel, WanTransformer3DModel

from bridgedit.config import FUSION_KINDS, ModelConfig
from bridgedit.describe import meta_inputs
from bridgedit.model import BridgeDiT
from bridgedit.presets import get_preset

RESULTS = Path(__file__).parent / "results"


def cast_like_from_pretrained(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast to `dtype` but keep the model's `_keep_in_fp32_modules` in float32, as diffusers' loader does."""
    model.to(dtype)
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if keep & set(name.split(".")):
            tensor.data = tensor.data.float()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="wan2.1-t2v-1.3b+stable-audio-open-1.0")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    preset = get_preset(args.preset)
    torch.manual_seed(0)
    with torch.device(device):
        video = cast_like_from_pretrained(WanTransformer3DModel(**preset.video_transformer), dtype).eval()
        audio = cast_like_from_pretrained(StableAudioDiTModel(**preset.audio_transformer), dtype).eval()

    lengths = preset.lengths()
    video_latents, audio_latents, _, _, video_conditions, audio_conditions = meta_inputs(preset, lengths)
    b = args.batch
    inputs = (
        torch.randn((b, *video_latents.shape[1:]), device=device, dtype=dtype),
        torch.randn((b, *audio_latents.shape[1:]), device=device, dtype=dtype),
        torch.full((b,), 500.0, device=device),
        torch.full((b,), 0.5, device=device),
        type(video_conditions)(torch.randn((b, *video_conditions.text_states.shape[1:]), device=device, dtype=dtype)),
        type(audio_conditions)(
            torch.randn((b, *audio_conditions.text_states.shape[1:]), device=device, dtype=dtype),
            torch.randn((b, *audio_conditions.global_states.shape[1:]), device=device, dtype=dtype),
        ),
    )

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    results = {}
    for fusion in FUSION_KINDS:
        config = ModelConfig(bridge=replace(preset.model.bridge, fusion=fusion), trainable=preset.model.trainable)
        model = BridgeDiT(video, audio, config)
        model.bridges.to(device=device, dtype=dtype)
        model.eval()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            for _ in range(2):
                model(*inputs)
            synchronize()
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                model(*inputs)
                synchronize()
                times.append(time.perf_counter() - start)
        results[fusion] = {
            "seconds_median": statistics.median(times),
            "seconds_all": times,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
            "bridge_parameters": sum(p.numel() for p in model.bridges.parameters()),
        }
        del model
    base = results["none"]["seconds_median"]
    for record in results.values():
        record["ratio_to_none"] = record["seconds_median"] / base

    name = "bridge_overhead" + ("" if args.preset.startswith("wan2.1") else f"_{args.preset}")
    out = RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    out.write_text(
        json.dumps(
            {
                "benchmark": "bridge_overhead",
                "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                "device": device_name,
                "dtype": str(dtype),
                "torch": torch.__version__,
                "preset": args.preset,
                "batch": b,
                "video_tokens": lengths.video_tokens,
                "audio_tokens": lengths.audio_tokens,
                "fusions": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"{device_name}, {dtype}, batch {b}, {lengths.video_tokens} video + {lengths.audio_tokens} audio tokens")
    print(f"{'fusion':<16}{'ms':>10}{'x none':>9}{'peak GiB':>10}")
    for fusion, record in results.items():
        peak = f"{record['peak_gib']:.1f}" if record["peak_gib"] is not None else "-"
        print(f"{fusion:<16}{1000 * record['seconds_median']:>10.1f}{record['ratio_to_none']:>9.3f}{peak:>10}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
