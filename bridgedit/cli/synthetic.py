"""`bridgedit synthetic make`: a procedural sounding dataset with exact event times, in prepare's format."""

from __future__ import annotations

import argparse

from ..synthetic import WorldSettings, make_dataset


def add_parser(subparsers) -> None:
    defaults = WorldSettings()
    parser = subparsers.add_parser(
        "synthetic",
        help="a procedural sounding world: objects bounce at random times, each impact sounds like its material",
        description="Procedural sounding videos with exact event times and three captions per clip (visual-only T_V, "
        "audio-only T_A, and a shared one), written in the format `bridgedit prepare` writes.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    make = actions.add_parser("make", help="write a dataset", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    make.add_argument("--out", required=True, metavar="DATASET")
    make.add_argument("--clips", type=int, default=64)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--test-clips", type=int, default=0, help="the last N clips form the test split")
    make.add_argument("--seconds", type=float, default=defaults.seconds)
    make.add_argument("--fps", type=float, default=defaults.fps)
    make.add_argument("--height", type=int, default=defaults.height)
    make.add_argument("--width", type=int, default=defaults.width)
    make.add_argument("--sample-rate", type=int, default=defaults.sample_rate)
    make.add_argument("--max-events", type=int, default=defaults.max_events)
    make.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = make_dataset(args.out, clips=args.clips, seed=args.seed, test_clips=args.test_clips, progress=True,
                       seconds=args.seconds, fps=args.fps, height=args.height, width=args.width,
                       sample_rate=args.sample_rate, max_events=args.max_events)
    print(f"wrote {args.clips} clips to {out} (manifest: {out}/manifest.jsonl)")
    return 0
