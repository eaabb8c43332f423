"""`bridgedit train`: train bridges (and the trainable tower blocks) from a YAML recipe."""

from __future__ import annotations

import argparse

from ..training.config import TrainConfig


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train BridgeDiT from a YAML config (Table 5 defaults), on a CPU or N GPUs with accelerate",
        description="Train from a cached dataset (made first when missing: a prepared dataset is cached, "
        "data.synthetic makes one). Checkpoints go to checkpoint.dir/checkpoint-NNNNNN (a model folder that "
        "BridgeDiTPipeline.from_pretrained and `bridgedit generate --model` load, plus the training state). "
        "Several GPUs or nodes: `accelerate launch -m bridgedit.cli.main train --config FILE` (see configs/).",
    )
    parser.add_argument("--config", required=True, metavar="FILE.yaml")
    parser.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        nargs="?",
        const="latest",
        help="continue a run exactly: a checkpoint folder, or (no value) the latest in checkpoint.dir",
    )
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..training.trainer import Trainer, summarize

    config = TrainConfig.from_yaml(args.config)
    if args.steps is not None:
        config = replace(config, train=replace(config.train, steps=args.steps))
    trainer = Trainer(config, resume=args.resume)
    result = trainer.run()
    if trainer.accelerator.is_main_process:
        summary = summarize(result.history)
        if summary:
            print(
                f"loss {summary['first_loss']:.4f} -> {summary['last_loss']:.4f} "
                f"(mean of the first and last steps, {summary['ratio']:.1f}x lower)"
            )
        print(f"checkpoint: {result.checkpoint}")
    return 0
