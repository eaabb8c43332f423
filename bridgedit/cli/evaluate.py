"""`bridgedit evaluate`: score generated sounding videos with the metrics of §4.1."""

from __future__ import annotations

import argparse
import json

from ..atomic import write_text_atomic
from ..evaluation.av_align import VARIANTS
from ..evaluation.defaults import AUDIOSET_CLASSIFIER_DEFAULT, CLAP_DEFAULT, CLIP_DEFAULT, METRICS, WEIGHTS_DIR


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score generated sounding videos: FVD, KVD, FAD, KL, CLIPSIM, CLAP, IB-VA, AV-Align",
        description="Score a folder of generated .mp4 files (with an audio stream, or a .wav of the same name). "
        "Files pair with --reference by name; unpaired files are listed. Captions for CLIPSIM (video caption) and "
        "CLAP (audio caption) come from a JSONL file keyed by id = file stem (generate's prompt file, or a dataset "
        "manifest). FVD, KVD, FAD and KL need --reference. Default metrics: av_align, plus clipsim and clap when "
        "captions are given.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--generated", required=True, metavar="DIR")
    parser.add_argument("--reference", metavar="DIR")
    parser.add_argument("--captions", metavar="FILE.jsonl")
    parser.add_argument("--metrics", help=f"comma-separated, from: {', '.join(METRICS)}")
    parser.add_argument("--clip-model", default=CLIP_DEFAULT, help="CLIP folder or hub id (CLIPSIM)")
    parser.add_argument("--clap-model", default=CLAP_DEFAULT, help="LAION-CLAP folder or hub id (CLAP score)")
    parser.add_argument(
        "--audioset-model", default=AUDIOSET_CLASSIFIER_DEFAULT, help="AudioSet classifier folder or hub id (KL)"
    )
    parser.add_argument(
        "--i3d-weights",
        default=str(WEIGHTS_DIR),
        metavar="PATH",
        help="I3D .safetensors, or a folder holding i3d.safetensors (FVD, KVD; see convert-weights)",
    )
    parser.add_argument(
        "--vggish-weights",
        default=str(WEIGHTS_DIR),
        metavar="PATH",
        help="VGGish .safetensors, or a folder holding vggish.safetensors (FAD; see convert-weights)",
    )
    parser.add_argument(
        "--imagebind-weights",
        default=str(WEIGHTS_DIR),
        metavar="PATH",
        help="ImageBind .safetensors, or a folder holding imagebind.safetensors (IB-VA; see convert-weights)",
    )
    parser.add_argument(
        "--av-align-variant",
        choices=VARIANTS,
        default="current",
        help="current: peaks >= 0.1, one-to-one matching; original: the first published rules",
    )
    parser.add_argument(
        "--strict", action="store_true", help="a clip that cannot be decoded is an error (default: named and left out)"
    )
    parser.add_argument("--out", metavar="FILE.json", help="also write the full result (with per-clip values)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a Markdown table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    result = evaluate(
        args.generated,
        reference=args.reference,
        captions=args.captions,
        metrics=metrics,
        clip_model=args.clip_model,
        clap_model=args.clap_model,
        audioset_model=args.audioset_model,
        i3d_weights=args.i3d_weights,
        vggish_weights=args.vggish_weights,
        imagebind_weights=args.imagebind_weights,
        av_align_variant=args.av_align_variant,
        strict=args.strict,
    )
    summary = {**result.values, "n": result.n, "backbones": result.backbones, "unpaired": result.unpaired}
    if args.out:
        write_text_atomic(args.out, json.dumps(result.to_dict(), indent=2))
    print(json.dumps(summary) if args.json else result.markdown())
    return 0
