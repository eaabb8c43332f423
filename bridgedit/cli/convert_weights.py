"""`bridgedit convert-weights`: a published .pt / .pth state dict (VGGish, I3D) -> .safetensors for evaluation."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-weights",
        help="convert a .pt/.pth state dict (VGGish for FAD, I3D for FVD) to .safetensors",
        description="Read a PyTorch state dict with torch.load(weights_only=True) (tensors only, no code) and write "
        "it as safetensors, the only format evaluation loads. Used once for torchvggish's vggish-10086976.pth and "
        "pytorch-i3d's rgb_imagenet.pt (see docs/evaluation.md).",
    )
    parser.add_argument("source", metavar="SOURCE.pth")
    parser.add_argument("destination", metavar="OUT.safetensors")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.weights import convert_to_safetensors

    count = convert_to_safetensors(args.source, args.destination)
    print(f"wrote {count} tensors to {args.destination}")
    return 0
