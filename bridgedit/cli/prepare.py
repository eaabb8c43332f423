"""`bridgedit prepare`: source videos -> standard clips and a manifest (§4.1)."""

from __future__ import annotations

import argparse

from ..data.prepare import load_av_filter, prepare_dataset
from ..data.sources import LAYOUTS, read_sources
from ..evaluation.defaults import WEIGHTS_DIR
from ..media import ClipStandard


def add_parser(subparsers) -> None:
    defaults = ClipStandard()
    parser = subparsers.add_parser(
        "prepare",
        help="cut, resample and resize source videos into standard training clips plus a manifest",
        description="Standardise source videos as in §4.1: a seeded random window of --seconds (or the whole "
        "source, padded by holding the last frame and adding silence, when shorter), --fps, resized to cover "
        "--width x --height and centre-cropped, audio mono at --sample-rate. SRC is a folder of videos, a .csv / "
        ".jsonl manifest, or an AVSync15 / VGGSound-SS / Landscape folder (see docs/data.md). Rejected sources "
        "are listed with the reason in DATASET/rejects.jsonl. Re-running resumes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("--out", required=True, metavar="DATASET", help="output dataset folder")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto")
    parser.add_argument("--seconds", type=float, default=defaults.seconds)
    parser.add_argument("--fps", type=float, default=defaults.fps)
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--sample-rate", type=int, default=defaults.sample_rate)
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=defaults.min_seconds,
        help="shorter sources are rejected; longer ones up to --seconds are padded",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the crops and the test-set draw")
    parser.add_argument("--test-size", type=int, help="draw this many test clips among those without a given split")
    parser.add_argument(
        "--av-filter",
        metavar="imagebind|MODULE:FUNCTION",
        help="keep clips whose audio-visual score is above --av-threshold: 'imagebind' is the paper's "
        "(ImageBind audio-video cosine; weights from --imagebind-weights), or any "
        "fn(frames, audio, sample_rate) -> float",
    )
    parser.add_argument(
        "--imagebind-weights",
        default=str(WEIGHTS_DIR),
        metavar="PATH",
        help="ImageBind .safetensors or a folder holding imagebind.safetensors (see convert-weights)",
    )
    parser.add_argument("--av-threshold", type=float, default=0.3)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    standard = ClipStandard(
        seconds=args.seconds,
        fps=args.fps,
        height=args.height,
        width=args.width,
        sample_rate=args.sample_rate,
        min_seconds=args.min_seconds,
    )
    if args.av_filter == "imagebind":
        from ..evaluation.imagebind import ImageBindScorer

        av_filter = ImageBindScorer.from_pretrained(args.imagebind_weights).as_prepare_filter(args.fps)
    else:
        av_filter = load_av_filter(args.av_filter) if args.av_filter else None
    layout, entries = read_sources(args.source, args.layout)
    print(f"{len(entries)} sources ({layout} layout)")
    report = prepare_dataset(
        entries,
        args.out,
        standard,
        seed=args.seed,
        test_size=args.test_size,
        av_filter=av_filter,
        av_threshold=args.av_threshold,
    )
    print(f"{report}; manifest: {args.out}/manifest.jsonl")
    return 0
