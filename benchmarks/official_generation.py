"""One sounding clip end to end with the authors' released architecture, random weights: where the time goes.

    python benchmarks/official_generation.py                 # a GPU: real size (480x832, 81 frames, 50 steps, bf16)
    python benchmarks/official_generation.py --size cpu      # anywhere: real-size towers, a small clip, 2 steps

The model is the released one (`config.RELEASED_BRIDGE`, DCA by default, the real Wan 2.1 1.3B transformer and Stable
Audio Open DiT, their real VAEs) with random weights, since none can be downloaded here; the sampling is the release's
(native schedule, CFG on both streams, negative prompts, Wan text padded to 1,024 tokens). At `--size full` the text
encoders are UMT5-XXL and T5-base at their real sizes; at `--size cpu` they keep their real widths (the towers read
them) with 2 layers and a small vocabulary, and the clip is 160x288, 17 frames, 2 steps: per-step figures carry over,
totals do not.

Reported: seconds per clip and per stage (text encoding, sampling, VAE decodes, mux), the bridges' share of sampling
(timed by hooks on the bridge blocks, synchronised on a GPU), peak memory, the FLOPs of the run (PyTorch's
FlopCounterMode on the meta device, as `bridgedit describe`) and, at real size, the ratio of the measured time to
the physical limit: 29.1 PFLOP a clip at 790 dense bf16 TFLOP/s (about 37 s). Writes
benchmarks/results/official_generation-<size>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from bridge_overhead import cast_like_from_pretrained  # this folder's script (run from anywhere as a file)

from bridgedit import tiny
from bridgedit.config import ClipSpec, ModelConfig
from bridgedit.describe import describe
from bridgedit.media import write_sounding_video
from bridgedit.presets import get_preset
from bridgedit.release import RELEASE_GENERATION_DEFAULTS

RESULTS = Path(__file__).parent / "results"
REAL = "wan2.1-t2v-1.3b+stable-audio-open-1.0"  # the released architecture
PHYSICAL_LIMIT_FLOP = 29.1e15  # one 5.4 s clip, 50 steps, CFG on both streams (issue #40)
PEAK_BF16_FLOPS = 790e12  # dense bf16 FLOP/s of the GPU class the limit is quoted for

SIZES = {
    "full": dict(height=480, width=832, num_frames=81, steps=50, text_layers=None),
    "cpu": dict(height=160, width=288, num_frames=17, steps=2, text_layers=2),
}

VIDEO_PROMPT = (
    "In a serene backyard, a German Shepherd leaps from a stone path beside a pool, its paws striking the "
    "tiles as the plants sway."
)
AUDIO_PROMPT = "Alert barks of a dog and the soft rustle of leaves."


def text_encoders(layers: int | None):
    """UMT5-XXL (Wan) and T5-base (Stable Audio) at their real sizes, or with `layers` layers and a small vocabulary
    (their widths are what the towers read)."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    vocab = len(tiny.tokenizer()) if layers else None
    umt5 = UMT5Config(
        vocab_size=vocab or 256_384,
        d_model=4096,
        d_kv=64,
        d_ff=10_240,
        num_layers=layers or 24,
        num_heads=64,
        relative_attention_num_buckets=32,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
    )
    t5 = T5Config(
        vocab_size=vocab or 32_128,
        d_model=768,
        d_kv=64,
        d_ff=3072,
        num_layers=layers or 12,
        num_heads=12,
        feed_forward_proj="relu",
        dropout_rate=0.0,
    )
    return UMT5EncoderModel(umt5).eval(), T5EncoderModel(t5).eval()


def build_pipeline(size: dict, fusion: str, device: torch.device, dtype: torch.dtype):
    """The released architecture at real size, random weights, as a BridgeDiTPipeline."""
    from diffusers import (
        AutoencoderKLWan,
        AutoencoderOobleck,
        StableAudioDiTModel,
        StableAudioPipeline,
        StableAudioProjectionModel,
        WanPipeline,
        WanTransformer3DModel,
    )

    from bridgedit.pipeline import BridgeDiTPipeline

    preset = get_preset(REAL)
    torch.manual_seed(0)
    with torch.device(device):
        umt5, t5 = text_encoders(size["text_layers"])
        # the class defaults of both VAEs are Wan 2.1's and Stable Audio Open's published configs
        video_pipe = WanPipeline(
            tokenizer=tiny.tokenizer(max_length=512),
            text_encoder=umt5,
            vae=AutoencoderKLWan(),
            transformer=WanTransformer3DModel(**preset.video_transformer),
            scheduler=tiny.wan_scheduler(),
        )
        audio_pipe = StableAudioPipeline(
            tokenizer=tiny.tokenizer(max_length=128),
            text_encoder=t5,
            projection_model=StableAudioProjectionModel(
                text_encoder_dim=768, conditioning_dim=768, min_value=0, max_value=512
            ),
            vae=AutoencoderOobleck(),
            transformer=StableAudioDiTModel(**preset.audio_transformer),
            scheduler=tiny.stable_audio_scheduler(),
        )
        config = ModelConfig(bridge=replace(preset.model.bridge, fusion=fusion), trainable=preset.model.trainable)
        pipe = BridgeDiTPipeline.from_pipes(
            video_pipe, audio_pipe, config, generation_defaults=RELEASE_GENERATION_DEFAULTS
        )
    if dtype != torch.float32:  # as from_pretrained(dtype=...) loads them: diffusers' fp32 modules kept in float32
        for pipeline in (pipe.video_pipe, pipe.audio_pipe):
            for component in pipeline.components.values():
                if isinstance(component, torch.nn.Module):
                    cast_like_from_pretrained(component, dtype)
        pipe.model.bridges.to(dtype=dtype)
    return pipe


class StageTimer:
    """Wall-clock seconds per stage, synchronising the GPU around each timed call."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, {}

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            result = function(*args, **kwargs)
            self.sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            return result

        return timed

    def hook_modules(self, name: str, modules) -> None:
        """Add each module's forward time to `name` (pre and post forward hooks)."""
        starts = {}

        def before(module, args):
            self.sync()
            starts[id(module)] = time.perf_counter()

        def after(module, args, output):
            self.sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - starts.pop(id(module))

        for module in modules:
            module.register_forward_pre_hook(before)
            module.register_forward_hook(after)


def run_flops(fusion: str, clip: ClipSpec, steps: int) -> float:
    """FLOPs of sampling (2 x steps joint forwards at batch 1: CFG's two halves) at this clip size."""
    preset = replace(get_preset(REAL), clip=clip)
    return 2 * steps * describe(preset, fusion=fusion).flops["total"]


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default="full" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fusion", default="dca", choices=("dca", "full_attention", "additive", "v2a", "a2v"))
    parser.add_argument("--steps", type=int, help="sampling steps (default: 50 at full size, 2 at cpu size)")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    size = SIZES[args.size]
    steps = args.steps or size["steps"]
    started = time.perf_counter()
    pipe = build_pipeline(size, args.fusion, device, dtype)
    build_seconds = time.perf_counter() - started

    timer = StageTimer(device)
    pipe.encode_prompts = timer.wrap("text_encoding", pipe.encode_prompts)
    pipe.decode_video = timer.wrap("video_decode", pipe.decode_video)
    pipe.decode_audio = timer.wrap("audio_decode", pipe.decode_audio)
    timer.hook_modules("bridges", pipe.model.bridges.blocks)
    settings = {
        **RELEASE_GENERATION_DEFAULTS,
        "height": size["height"],
        "width": size["width"],
        "num_frames": size["num_frames"],
        "num_inference_steps": steps,
    }
    call = {
        key: settings[key]
        for key in (
            "height",
            "width",
            "num_frames",
            "fps",
            "num_inference_steps",
            "schedule",
            "max_sequence_length",
            "audio_length_rounding",
            "negative_video_prompt",
            "negative_audio_prompt",
        )
    }
    call.update(video_guidance=settings["video_guidance"], audio_guidance=settings["audio_guidance"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    total = timer.wrap("generate", pipe)
    output = total(VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator(device).manual_seed(0), progress=True, **call)
    with tempfile.TemporaryDirectory() as folder:
        timer.wrap("mux", write_sounding_video)(
            Path(folder) / "clip.mp4", output.video[0], output.fps, output.audio[0], output.sample_rate
        )
    seconds = timer.seconds
    sampling = seconds["generate"] - seconds["text_encoding"] - seconds["video_decode"] - seconds["audio_decode"]
    clip_seconds = seconds["generate"] + seconds["mux"]
    clip = ClipSpec(
        height=size["height"], width=size["width"], num_frames=size["num_frames"], audio_length_rounding="floor"
    )
    flops = run_flops(args.fusion, clip, steps)
    result = {
        "benchmark": "official_generation",
        "size": args.size,
        "fusion": args.fusion,
        "steps": steps,
        "clip": {
            "height": size["height"],
            "width": size["width"],
            "frames": size["num_frames"],
            "audio_seconds": output.audio.shape[-1] / output.sample_rate,
        },
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "dtype": str(dtype).removeprefix("torch."),
        "seconds": {
            "clip": clip_seconds,
            "text_encoding": seconds["text_encoding"],
            "sampling": sampling,
            "per_step": sampling / steps,
            "bridges": seconds.get("bridges", 0.0),
            "video_decode": seconds["video_decode"],
            "audio_decode": seconds["audio_decode"],
            "mux": seconds["mux"],
            "building_random_weights": build_seconds,
        },
        "share_of_clip": {
            "text_encoding": seconds["text_encoding"] / clip_seconds,
            "sampling": sampling / clip_seconds,
            "bridges": seconds.get("bridges", 0.0) / clip_seconds,
            "vaes": (seconds["video_decode"] + seconds["audio_decode"]) / clip_seconds,
        },
        "bridges_share_of_sampling": seconds.get("bridges", 0.0) / sampling,
        "peak_memory_gib": peak_memory_gib(device),
        "sampling_flop": flops,
        "sampling_tflop_per_s": flops / sampling / 1e12,
        "text_encoders": "real size" if size["text_layers"] is None else f"real widths, {size['text_layers']} layers",
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
    if args.size == "full" and steps == 50:
        limit = PHYSICAL_LIMIT_FLOP / PEAK_BF16_FLOPS
        result["physical_limit_seconds"] = limit
        result["ratio_to_physical_limit"] = clip_seconds / limit
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"official_generation-{args.size}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
