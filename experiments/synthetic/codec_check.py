"""How well does a patch video codec draw the world's objects (issue #46: a ball should read as round)? Train one
codec of the given shape on a small world of the recipe's demo settings, then report its L1 error on held-out clips
and save a strip of held-out frames (top) over their reconstructions (bottom).

    python experiments/synthetic/codec_check.py --patch 16 --decoder-kernel 3 --steps 1500 [--hidden 256]
        # about 3 minutes on 2 free cores; writes results/codec_check-p16-k3-h256-1500.json and .png
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bridgedit.atomic import write_text_atomic
from bridgedit.synthetic.codecs import _pixels, load_clips, train_video_codec
from bridgedit.synthetic.patch_codec import PatchVideoCodec
from bridgedit.synthetic.recipe import DEMO_WORLD
from bridgedit.synthetic.world import make_dataset

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patch", type=int, default=16)
    parser.add_argument("--decoder-kernel", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--clips", type=int, default=120, help="clips of the world; the last 8 are held out")
    args = parser.parse_args()
    name = f"codec_check-p{args.patch}-k{args.decoder_kernel}-h{args.hidden}-{args.steps}"
    with tempfile.TemporaryDirectory() as scratch:
        world = make_dataset(Path(scratch) / "world", clips=args.clips, seed=0, test_clips=8, **DEMO_WORLD)
        frames, _, _ = load_clips(world)
        held_out, _, _ = load_clips(world, split="test")
    torch.manual_seed(0)
    codec = PatchVideoCodec(patch_size=args.patch, z_dim=16, hidden_dim=args.hidden, decoder_kernel=args.decoder_kernel)
    started = time.perf_counter()
    losses = train_video_codec(codec, frames, steps=args.steps, seed=0)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        x = _pixels(held_out)  # (B, 3, F, H, W)
        y = codec.decode(codec.encode(x).latent_dist.mode()).sample
    error = float((y - x).abs().mean())
    print(f"{name}: held-out L1 {error:.4f}, last 100 steps' loss {np.mean(losses[-100:]):.4f}, {seconds:.0f} s")

    def to_image(video: torch.Tensor, frame: int) -> torch.Tensor:  # (3, H, W) in [-1, 1] -> (H, W, 3) uint8
        return ((video[:, frame] + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0)

    columns = [torch.cat([to_image(x[0], f), to_image(y[0], f)], dim=0) for f in range(0, x.shape[2], 3)]
    RESULTS.mkdir(exist_ok=True)
    Image.fromarray(torch.cat(columns, dim=1).numpy()).save(RESULTS / f"{name}.png")
    result = {
        "experiment": "codec_check",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "world": DEMO_WORLD,
        "held_out_l1": error,
        "train_seconds": seconds,
        "threads": torch.get_num_threads(),
    }
    write_text_atomic(RESULTS / f"{name}.json", json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS / name}.json and .png")


if __name__ == "__main__":
    main()
