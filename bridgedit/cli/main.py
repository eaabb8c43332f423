"""Entry point of `bridgedit <subcommand>`.

The subcommand modules import only light modules at the top (no torch, diffusers or transformers:
tests/test_bad_inputs.py checks), so that `--help` answers at once; each imports what its work needs inside its `run`."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from ..config import ConfigError
from ..errors import CheckpointError, ExtractorUnavailable
from ..media import MediaError
from . import (
    app,
    cache,
    caption,
    convert_official,
    convert_weights,
    describe,
    evaluate,
    generate,
    prepare,
    synthetic,
    train,
)

SUBCOMMANDS = (
    describe,
    prepare,
    caption,
    cache,
    train,
    generate,
    app,
    evaluate,
    convert_official,
    convert_weights,
    synthetic,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridgedit",
        description="Text-to-sounding-video generation with BridgeDiT (Wan 2.1 video tower + Stable Audio Open "
        "audio tower, joined by Dual Cross-Attention bridges).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an error, print the whole traceback, not one line (also: BRIDGEDIT_DEBUG=1)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


#: failures a user can cause and fix: one line naming the problem, no traceback (unless --debug)
EXPECTED_ERRORS = (
    ConfigError,
    CheckpointError,
    ExtractorUnavailable,
    MediaError,
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    UnicodeDecodeError,
)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    debug = args.debug or os.environ.get("BRIDGEDIT_DEBUG", "") not in ("", "0")
    try:
        return args.run(args) or 0
    except EXPECTED_ERRORS as error:
        if debug:
            raise
        print(f"bridgedit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bridgedit ... | head`: the reader left; say nothing more (Python's documented recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
