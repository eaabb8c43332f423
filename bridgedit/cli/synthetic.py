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

    from ..synthetic.recipe import PRECISION_MODES, RecipeSettings

    recipe_defaults = RecipeSettings()
    recipe = actions.add_parser(
        "recipe", help="train the demo model from nothing: world, codecs, towers, then DCA bridges (44.6 min measured on 2 free cores)",
        description="The paper's recipe at toy scale, one command: make the world, train tiny codecs, pretrain a "
        "text-to-video and a text-to-audio tower separately, then freeze all but their last blocks and train DCA "
        "bridges. Resumable: re-run the same command after an interruption. The model lands in OUT/model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    recipe.add_argument("--out", required=True, metavar="DIR")
    recipe.add_argument("--seed", type=int, default=recipe_defaults.seed)
    recipe.add_argument("--install", action="store_true",
                        help="then copy OUT/model into the package as `bridgedit generate`'s default model")
    recipe.add_argument("--scale", type=int, default=1, metavar="N",
                        help="divide every budget (clips, steps) by N: a quick, much worse model")
    recipe.add_argument("--precision", choices=tuple(PRECISION_MODES), default=recipe_defaults.tower_precision,
                        help="train the towers and the bridges in float32 or under bf16 autocast (only on a CPU with "
                        "native bf16, AVX512-BF16 or AMX, or a GPU; about 1.8 times the tower steps per minute on "
                        "this project's test machine)")
    recipe.set_defaults(run=run_recipe)


def run(args: argparse.Namespace) -> int:
    out = make_dataset(args.out, clips=args.clips, seed=args.seed, test_clips=args.test_clips, progress=True,
                       seconds=args.seconds, fps=args.fps, height=args.height, width=args.width,
                       sample_rate=args.sample_rate, max_events=args.max_events)
    print(f"wrote {args.clips} clips to {out} (manifest: {out}/manifest.jsonl)")
    return 0


def run_recipe(args: argparse.Namespace) -> int:
    import logging

    from ..config import ConfigError
    from ..synthetic import recipe
    from ..training.trainer import bf16_unavailable_reason

    if args.scale < 1:
        raise ConfigError("--scale must be a positive integer")
    if args.precision == "bf16" and (reason := bf16_unavailable_reason()):
        raise ConfigError(f"--precision bf16: {reason}; use --precision fp32")
    logging.getLogger("bridgedit").setLevel(logging.INFO)  # a long job: show each stage's progress
    settings = recipe.RecipeSettings(seed=args.seed, tower_precision=args.precision, bridge_precision=args.precision)
    if args.scale > 1:
        settings = recipe.smaller(settings, args.scale)
    model = recipe.run_recipe(args.out, settings)
    print(f"model: {model}")
    if args.install:
        print(f"installed as the default model: {recipe.install(model)}")
    return 0
