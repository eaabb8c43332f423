"""`bridgedit convert-official`: the authors' released BridgeDiT checkpoint (.ckpt) -> a bridgedit model folder."""

from __future__ import annotations

import argparse
import os
import re

from ..config import ConfigError
from ..release import (
    RELEASE_AUDIO_BRIDGE_POINTS,
    RELEASE_FUSION_NAMES,
    RELEASE_NUM_HEADS,
    RELEASE_VIDEO_BRIDGE_POINTS,
    STABLE_AUDIO_OPEN_1_0,
    WAN_T2V_1_3B,
)


def _points(text: str) -> tuple[int, ...]:
    try:
        points = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated block indices, e.g. 3,7,11,15; got {text!r}"
        ) from None
    return points


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-official",
        help="convert a checkpoint of the authors' release (Guan123/BridgeDiT .ckpt) into a bridgedit model folder",
        description="Read a released BridgeDiT checkpoint (PyTorch Lightning `state_dict` or DeepSpeed `module`) "
        "without running pickled code, map every key onto bridgedit's released architecture, check every key and "
        "shape, and write a model folder that `bridgedit generate --model DIR` loads (towers by reference, bridges "
        "and trained tower blocks as safetensors, the release's sampling settings as the model's defaults). Bridge "
        "count and widths are read from the weights; DCA, full attention and the one-way kinds share key names, so "
        "--fusion tells them apart.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "checkpoint",
        metavar="CKPT",
        help="a local .ckpt, or HUB_ID:PATH_IN_REPO (downloaded when online), "
        "e.g. Guan123/BridgeDiT:vgg-ss/bicross-1.3B/epoch=20-step=3318.ckpt",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the model folder to write (absent or empty)")
    parser.add_argument(
        "--fusion",
        choices=tuple(RELEASE_FUSION_NAMES),
        default=None,
        help="the checkpoint's fusion kind (default: additive when its keys say so, else dca)",
    )
    parser.add_argument("--num-heads", type=int, default=RELEASE_NUM_HEADS)
    parser.add_argument(
        "--video-bridge-points",
        type=_points,
        default=RELEASE_VIDEO_BRIDGE_POINTS,
        metavar="I,J,...",
        help="0-based video blocks each bridge runs after",
    )
    parser.add_argument(
        "--audio-bridge-points",
        type=_points,
        default=RELEASE_AUDIO_BRIDGE_POINTS,
        metavar="I,J,...",
        help="0-based audio blocks each bridge runs after",
    )
    parser.add_argument(
        "--video-model",
        default=WAN_T2V_1_3B,
        metavar="REF",
        help="the video tower: a hub id or a local WanPipeline folder (only its config is read here)",
    )
    parser.add_argument(
        "--audio-model",
        default=STABLE_AUDIO_OPEN_1_0,
        metavar="REF",
        help="the audio tower: a hub id or a local StableAudioPipeline folder",
    )
    parser.add_argument("--json", action="store_true", help="print the conversion's summary as JSON")
    parser.set_defaults(run=run)


def resolve_checkpoint(reference: str) -> str:
    """A local file as it is; HUB_ID:PATH_IN_REPO downloaded through huggingface_hub (its cache)."""
    if os.path.exists(reference):
        return reference
    match = re.fullmatch(r"([\w.-]+/[\w.-]+):(.+)", reference)
    if not match:
        raise FileNotFoundError(f"checkpoint {reference} does not exist (give a local file or HUB_ID:PATH_IN_REPO)")
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(match.group(1), match.group(2))
    except Exception as error:  # offline, unknown repo or file, no access: say which and how to fix
        raise FileNotFoundError(
            f"cannot download {reference} ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "download it yourself and pass the local file, or allow downloads (unset "
            "HF_HUB_OFFLINE)"
        ) from None


def run(args: argparse.Namespace) -> int:
    from ..official import convert_official, summary, to_json

    if args.num_heads < 1:
        raise ConfigError(f"--num-heads must be positive; got {args.num_heads}")
    conversion = convert_official(
        resolve_checkpoint(args.checkpoint),
        args.out,
        fusion=args.fusion,
        num_heads=args.num_heads,
        video_bridge_points=args.video_bridge_points,
        audio_bridge_points=args.audio_bridge_points,
        video_model=args.video_model,
        audio_model=args.audio_model,
    )
    if args.json:
        print(to_json(conversion))
        return 0
    info = summary(conversion)
    print(
        f"wrote {info['folder']}: {info['fusion']}, {info['bridges']} bridges of width {info['width']} "
        f"({info['num_heads']} heads), trainable {info['trainable']}, {info['tensors']} tensors"
    )
    if conversion.ignored:
        print(
            f"  ignored {len(conversion.ignored)} key(s) the release's own forward never reads: "
            f"{', '.join(conversion.ignored[:4])}{' ...' if len(conversion.ignored) > 4 else ''}"
        )
    return 0
