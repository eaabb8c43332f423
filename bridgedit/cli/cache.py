"""`bridgedit cache`: encode a prepared dataset once (VAE latents, caption text states) for training."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import generation


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="encode a prepared dataset's clips and captions once (VAE latents, text states) for training",
        description="Encode every clip of DATASET with the model's own VAEs and text encoders: Wan latents, "
        "Oobleck latents (mono duplicated to stereo), UMT5 states of T_V and projected T5 states of T_A at "
        "their true lengths, and Wan's null caption. One safetensors file per clip; re-running skips finished "
        "clips; under `accelerate launch` the clips are split across processes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("--model", required=True, help="model folder or hub id (its VAEs and text encoders are used)")
    parser.add_argument("--out", help="cache folder (default: DATASET/cache)")
    parser.add_argument("--max-sequence-length", type=int, default=512, help="UMT5 tokens per caption, as generation")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: this process's GPU when there is one)")
    parser.add_argument("--dtype", default="float32", help="float32 (recommended for the VAEs), bfloat16 or float16")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.cache import cache_dataset
    from ..pipeline import BridgeDiTPipeline

    state, device = generation.process_state(args.device)
    dtype = generation.resolve_dtype(args.dtype, device)
    out = Path(args.out) if args.out else Path(args.dataset) / "cache"
    pipe = BridgeDiTPipeline.from_pretrained(args.model, dtype=dtype).to(device)
    encoded = cache_dataset(
        pipe,
        args.dataset,
        out,
        model=args.model,
        state=state,
        max_sequence_length=args.max_sequence_length,
        progress=state.is_main_process,
    )
    sys.stdout.write(f"process {state.process_index}: encoded {encoded} clip(s) into {out}\n")  # one line, one write
    sys.stdout.flush()
    return 0
