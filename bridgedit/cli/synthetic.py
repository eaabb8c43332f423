"""`bridgedit synthetic make | recipe | picture`: the procedural sounding world, its demo model's recipe, and a picture
of a sounding clip with its events marked."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

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
    make.add_argument("--smooth-edges", action="store_true", help="anti-aliased balls (the demo model's world)")
    make.set_defaults(run=run)

    from ..synthetic.recipe import PRECISION_MODES, RecipeSettings

    recipe_defaults = RecipeSettings()
    recipe = actions.add_parser(
        "recipe",
        help="train the demo model from nothing: world, codecs, towers, then DCA bridges (hours on 2 CPU cores; resumable)",
        description="The paper's recipe at toy scale, one command: make the world, train tiny codecs, pretrain a "
        "text-to-video and a text-to-audio tower separately, then freeze all but their last blocks and train DCA "
        "bridges. Resumable: re-run the same command after an interruption. The model lands in OUT/model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    recipe.add_argument("--out", required=True, metavar="DIR")
    recipe.add_argument("--seed", type=int, help=f"default: {recipe_defaults.seed} (with --like: the model's)")
    recipe.add_argument(
        "--like",
        metavar="MODEL",
        help="make the model a recipe's model folder records in its recipe.json (e.g. bridgedit/assets/demo-model): "
        "its world, codecs, budgets and seed, not today's defaults",
    )
    recipe.add_argument(
        "--install",
        action="store_true",
        help="then copy OUT/model into the package as `bridgedit generate`'s default model",
    )
    recipe.add_argument(
        "--scale",
        type=int,
        default=1,
        metavar="N",
        help="divide every budget (clips, steps) by N: a quick, much worse model",
    )
    recipe.add_argument(
        "--precision",
        choices=tuple(PRECISION_MODES),
        default=None,
        help=f"train the towers and the bridges in float32 or under bf16 autocast (only on a CPU with "
        "native bf16, AVX512-BF16 or AMX, or a GPU; about 1.8 times the tower steps per minute on "
        f"this project's test machine). Default: {recipe_defaults.tower_precision} where it is native, "
        "else fp32 (slower, and a model with other numbers than the bundled one)",
    )
    recipe.set_defaults(run=run_recipe)

    picture = actions.add_parser(
        "picture",
        help="draw a sounding .mp4: its frames over its spectrogram, the detected events marked (needs matplotlib)",
        description="One picture of a sounding clip: its frames side by side over the spectrogram of its sound, "
        "with the synthetic world's detectors' events marked (video events red, audio onsets orange; the video "
        "events also dotted on the spectrogram, where sound and picture should meet).",
    )
    picture.add_argument("video", metavar="CLIP.mp4")
    picture.add_argument("--out", required=True, metavar="PICTURE.png")
    picture.add_argument("--title", help="default: the file's name")
    picture.set_defaults(run=run_picture)


def run(args: argparse.Namespace) -> int:
    out = make_dataset(
        args.out,
        clips=args.clips,
        seed=args.seed,
        test_clips=args.test_clips,
        progress=True,
        seconds=args.seconds,
        fps=args.fps,
        height=args.height,
        width=args.width,
        sample_rate=args.sample_rate,
        max_events=args.max_events,
        smooth_edges=args.smooth_edges,
    )
    print(f"wrote {args.clips} clips to {out} (manifest: {out}/manifest.jsonl)")
    return 0


def run_recipe(args: argparse.Namespace) -> int:
    import logging

    from ..config import ConfigError
    from ..synthetic import recipe
    from ..training.trainer import bf16_unavailable_reason

    if args.scale < 1:
        raise ConfigError("--scale must be a positive integer")
    if args.like:
        if not (Path(args.like) / "recipe.json").is_file():
            raise ConfigError(f"--like {args.like}: no recipe.json there (a model folder the recipe made has one)")
        settings = recipe.RecipeSettings.of_model(args.like)
    else:
        settings = recipe.RecipeSettings()
    precision = args.precision or recipe_precision(settings.tower_precision, bf16_unavailable_reason())
    if precision == "bf16" and (reason := bf16_unavailable_reason()):
        raise ConfigError(f"--precision bf16: {reason}; use --precision fp32")
    logging.getLogger("bridgedit").setLevel(logging.INFO)  # a long job: show each stage's progress
    seed = settings.seed if args.seed is None else args.seed
    settings = replace(settings, seed=seed, tower_precision=precision, bridge_precision=precision)
    if args.scale > 1:
        settings = recipe.smaller(settings, args.scale)
    model = recipe.run_recipe(args.out, settings)
    print(f"model: {model}")
    if args.install:
        print(f"installed as the default model: {recipe.install(model)}")
    return 0


def recipe_precision(default: str, bf16_unavailable: str | None) -> str:
    """The recipe's precision when --precision is not given: its default, or float32 where bf16 is not native (said
    on stderr: the recipe then takes longer and makes a model with other numbers than the bundled one)."""
    if default == "bf16" and bf16_unavailable:
        print(
            f"training in float32, not the recipe's bf16: {bf16_unavailable}; this takes longer "
            "and makes a model with other numbers than the bundled one",
            file=sys.stderr,
        )
        return "fp32"
    return default


def run_picture(args: argparse.Namespace) -> int:
    from ..synthetic.picture import clip_picture

    events = clip_picture(args.video, args.out, title=args.title)
    times = ", ".join(f"{t:.2f}" for t in events["video_events"]) or "none"
    onsets = ", ".join(f"{t:.2f}" for t in events["audio_onsets"]) or "none"
    print(f"wrote {args.out}: video events at {times} s; audio onsets at {onsets} s")
    return 0
