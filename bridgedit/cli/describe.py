"""`bridgedit describe`: parameters, token counts and FLOPs of a preset, built on the meta device."""

from __future__ import annotations

import argparse
import json

from ..config import FUSION_KINDS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "describe",
        help="sizes, parameters and FLOPs of a model preset (no weights needed)",
        description="Build a preset's BridgeDiT on the meta device (no weights, a few seconds, little memory) and "
        "report parameters per component, token counts at the preset's clip size, and the FLOPs of one joint "
        "forward with the bridges' share of them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        default="wan2.1-t2v-1.3b+stable-audio-open-1.0",
        help="a preset of bridgedit.presets (an unknown name lists them)",
    )
    parser.add_argument("--fusion", choices=FUSION_KINDS, default=None, help="fusion kind (default: the preset's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..describe import describe, format_description
    from ..presets import get_preset

    description = describe(get_preset(args.preset), fusion=args.fusion)
    if args.json:
        print(json.dumps(description.to_dict(), indent=2))
    else:
        print(format_description(description))
    return 0
