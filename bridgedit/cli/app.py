"""`bridgedit app`: serve the web app (Gradio) over one loaded pipeline."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import generation
from ..config import ConfigError
from .generate import add_rewrite_arguments, rewriter_from_args

#: where the app writes its clips unless told: beside the rewrite cache, kept across runs
DEFAULT_OUT_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bridgedit" / "app"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "app",
        help="serve a web app for generating sounding videos (needs the app extra: pip install -e '.[app]')",
        description="A Gradio app: text to sounding video, sound for a video, video for a sound, with a progress bar, "
        "a cancel button, a sync picture under each clip and the `bridgedit generate` command that makes it again. "
        "Local only unless --share; one job on the device at a time (others queue and see their place).",
    )
    parser.add_argument("--model", help="model folder or hub id (default: the bundled demo model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16")
    parser.add_argument("--out-dir", default=str(DEFAULT_OUT_DIR), metavar="DIR", help="where the clips are written")
    add_rewrite_arguments(
        parser.add_argument_group("one prompt made into two captions (a box above the captions when given)")
    )
    parser.set_defaults(run=run)


def load_studio(args: argparse.Namespace):
    """The app's Studio: the pipeline loaded once on the device, the rewriter, the results folder."""
    from ..app.studio import Studio
    from ..pipeline import BridgeDiTPipeline

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is not a port number (1-65535)")
    device = generation.resolve_device(args.device)
    dtype = generation.resolve_dtype(args.dtype, device)
    model = args.model or generation.default_model()
    if model is None:
        raise ConfigError("no --model given, and this install has no bundled demo model: pass --model FOLDER_OR_HUB_ID")
    pipe = BridgeDiTPipeline.from_pretrained(model, dtype=dtype).to(device)
    return Studio(pipe, args.out_dir, model=args.model, rewriter=rewriter_from_args(args))


def run(args: argparse.Namespace) -> int:
    from ..app.ui import launch

    studio = load_studio(args)  # before the server: a bad model fails here, in one line
    print(f"bridgedit app: serving {args.model or 'the bundled demo model'} on http://{args.host}:{args.port}")
    launch(studio, host=args.host, port=args.port, share=args.share)
    return 0
