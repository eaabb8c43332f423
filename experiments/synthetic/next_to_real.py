"""Do the bridges align one stream to the other? Generate one stream next to the other stream of a real held-out
clip, held clean (`BridgeDiTPipeline(given_video_latents=...)` / `given_audio_latents`), and score the pair with the
synthetic world's event-level sync score, next to its chance level (each clip's frames against every other clip's
audio). This isolates the bridges from the video tower's own failures (docs/synthetic.md, "What the samples look
like"): the real video has one clean object and its true events, so audio that follows it scores above chance;
a model whose audio cannot see the video ("none") scores at chance.

    python experiments/synthetic/next_to_real.py [--recipe outputs/demo] VARIANT:MODEL_OR_CHECKPOINT [...]
        # e.g. none:R/none-seed0/checkpoint-001200 dca:R/dca-seed0/checkpoint-001200 ...; runs of one VARIANT are
        # averaged (mean and std over them); writes experiments/synthetic/results/next_to_real.json and .png (the plot needs
        # `pip install -e .[bench]`)
    python experiments/synthetic/next_to_real.py --audio-guidance 1 --directions "audio for the real video" \
            --results-name next_to_real-audio-guidance-1 VARIANT:MODEL ...
        # audio for the real video without audio guidance (w_a = 1; the models' default is the paper's 7)

Resumable: a model already scored in that file (same path, same held-out clips) is read back rather than generated
again (--fresh to score everything again), so variants can be scored in separate calls and gathered by a last one.
A file scored with other guidance is refused, not overwritten: each guidance setting has its own --results-name.

Only meaningful for bridges trained with each stream's noise level drawn on its own (the recipe's bridge
settings): a clean stream next to a noisy one is then a pair seen in training. `experiments/synthetic/ablation.py` scores
every run of the fusion ablation this way too (when it trains with independent noise levels).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from bridgedit.atomic import write_text_atomic
from bridgedit.data.manifest import load_manifest
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic.scoring import HELD_OUT_SEED, NEXT_TO_REAL, paired_lead, score_next_to_real

RESULTS = Path(__file__).parent / "results"
DIRECTIONS = tuple(NEXT_TO_REAL)
STATISTICS = ("video_events", "audio_events", "sync", "sync_chance", "sync_above_chance")


def previous_runs(results: Path, test_clips: int, guidance: dict[str, float]) -> dict[str, dict]:
    """Every model scored in the results file so far, by path (none when it holds another number of clips). A file
    generated with other guidance is never overwritten: that is another --results-name."""
    if not results.exists():
        return {}
    previous = json.loads(results.read_text())
    if previous.get("guidance", {}) != guidance:
        default = "the models' own"
        raise SystemExit(
            f"{results} holds models scored with guidance {previous.get('guidance') or default}, not "
            f"{guidance or default}: give another --results-name (or --fresh to replace it)"
        )
    return previous.get("scored", {}) if previous.get("test_clips") == test_clips else {}


def aggregate(runs: dict[str, dict], directions: tuple[str, ...]) -> dict[str, dict]:
    """Mean and std over a variant's runs of each statistic, per direction."""
    return {
        direction: {
            name: {
                "mean": float(np.mean([run[direction][name] for run in runs.values()])),
                "std": float(np.std([run[direction][name] for run in runs.values()])),
            }
            for name in STATISTICS
        }
        for direction in directions
    }


def plot(variants: dict[str, dict], directions: tuple[str, ...], guidance: dict[str, float], path: Path) -> None:
    """Per direction: each variant's sync (bar: mean over runs, dots: runs) next to its chance level (hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(variants)
    figure, axes = plt.subplots(
        1, len(directions), figsize=(max(8.5, 5.5 * len(directions)), 3.8), sharey=True, squeeze=False
    )
    axes = axes[0]
    for axis, direction in zip(axes, directions):
        positions = np.arange(len(labels))
        axis.bar(positions - 0.2, [variants[v][direction]["sync"]["mean"] for v in labels], 0.4, label="sync")
        axis.bar(
            positions + 0.2,
            [variants[v][direction]["sync_chance"]["mean"] for v in labels],
            0.4,
            color="lightgray",
            hatch="//",
            label="chance (another clip's pairing)",
        )
        for index, label in enumerate(labels):  # each run as a dot
            runs = [run[direction]["sync"] for run in variants[label]["runs"].values()]
            axis.scatter([index - 0.2] * len(runs), runs, s=8, color="black", zorder=3)
        axis.set_xticks(positions, [v.replace(" (", "\n(") for v in labels], fontsize=8)
        axis.set_title(direction)
        axis.legend(fontsize=8, loc="upper left", ncols=2)
    top = max(run[d]["sync"] for v in variants.values() for run in v["runs"].values() for d in directions)
    axes[0].set_ylim(0, 1.3 * top)  # room for the legends above the bars
    overrides = "".join(f", {name.replace('_guidance', '')} guidance {value:g}" for name, value in guidance.items())
    figure.suptitle(f"One stream generated next to the other stream of real held-out clips{overrides} (dots: seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="VARIANT:MODEL", help="a label and a model folder or checkpoint")
    parser.add_argument("--recipe", default="outputs/demo", help="the demo recipe's output folder (its held-out clips)")
    parser.add_argument("--clips", type=int, help="only the first N held-out clips (a quick look)")
    parser.add_argument(
        "--baseline",
        default="none",
        help="the variant every other one is compared with, clip by clip (its i-th run with their i-th)",
    )
    parser.add_argument(
        "--shared-caption",
        default="",
        metavar="VARIANT[,VARIANT]",
        help="variants prompted with the clips' shared caption instead of T_V / T_A",
    )
    parser.add_argument("--fresh", action="store_true", help="score every model again, even one already in the results")
    parser.add_argument("--video-guidance", type=float, help="w_v for the generated video (default: the model's)")
    parser.add_argument("--audio-guidance", type=float, help="w_a for the generated audio (default: the model's)")
    parser.add_argument(
        "--directions", default=",".join(DIRECTIONS), help=f"comma-separated, of: {', '.join(DIRECTIONS)}"
    )
    parser.add_argument(
        "--results-name", default="next_to_real", help="write experiments/synthetic/results/NAME.json and NAME.png"
    )
    args = parser.parse_args()
    directions = tuple(d for d in DIRECTIONS if d in args.directions.split(","))
    if not directions or len(directions) != len(args.directions.split(",")):
        parser.error(f"--directions {args.directions!r}: give a comma-separated subset of {', '.join(DIRECTIONS)}")
    labelled = []
    for argument in args.models:
        label, separator, model = argument.partition(":")
        if not separator or not label or not model:
            parser.error(f"{argument!r}: give each model as VARIANT:PATH (e.g. dca:outputs/demo/runs/bridges/latest)")
        labelled.append((label, model))

    dataset = Path(args.recipe) / "dataset"
    records = load_manifest(dataset, split="test")[: args.clips]
    guidance = {
        name: value
        for name, value in (("video_guidance", args.video_guidance), ("audio_guidance", args.audio_guidance))
        if value is not None
    }
    results = RESULTS / f"{args.results_name}.json"
    scored = {} if args.fresh else previous_runs(results, len(records), guidance)
    scored = {model: run for model, run in scored.items() if all(d in run for d in directions)}
    variants: dict[str, dict[str, dict]] = {}
    for label, model in labelled:
        runs = variants.setdefault(label, {})
        captions = "shared" if label in args.shared_caption.split(",") else "hvgc"
        runs[model] = scored.get(model) or score_next_to_real(
            BridgeDiTPipeline.from_pretrained(model),
            dataset,
            records,
            captions=captions,
            directions=directions,
            **guidance,
        )
        scored[model] = runs[model]
        write_text_atomic(
            results, json.dumps({"test_clips": len(records), "guidance": guidance, "scored": scored}, indent=2) + "\n"
        )
        for direction, row in runs[model].items():
            print(
                f"{label:<16}{direction:<26}" + "".join(f"{name}={row[name]:.3f}  " for name in STATISTICS), flush=True
            )
    summary = {
        "benchmark": "next_to_real",
        "scored": scored,
        "command": "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "test_clips": len(records),
        "generation_seed": HELD_OUT_SEED,
        "guidance": guidance,
        "variants": {label: {"runs": runs, **aggregate(runs, directions)} for label, runs in variants.items()},
    }
    if args.baseline in variants:
        for label, runs in variants.items():
            if label != args.baseline and len(runs) <= len(variants[args.baseline]):
                summary["variants"][label][f"lead over {args.baseline}"] = {
                    direction: paired_lead(list(runs.values()), list(variants[args.baseline].values()), direction)
                    for direction in directions
                }
    write_text_atomic(results, json.dumps(summary, indent=2) + "\n")
    for label, row in summary["variants"].items():
        for direction in directions:
            cells = "".join(
                f"{name}={row[direction][name]['mean']:.3f}±{row[direction][name]['std']:.3f}  "
                for name in ("sync", "sync_chance", "sync_above_chance")
            )
            lead = row.get(f"lead over {args.baseline}", {}).get(direction)
            if lead:
                cells += f"lead over {args.baseline}: {lead['mean']:+.3f} ± {lead['standard_error']:.3f} (p = {lead['p_value']:.3g})"
            print(f"{label:<16}{direction:<26}{cells}")
    try:
        plot(summary["variants"], directions, guidance, results.with_suffix(".png"))
        print(f"wrote {results} and {results.with_suffix('.png')}")
    except ImportError:
        print(f"wrote {results} (no plot: pip install -e .[bench] for matplotlib)")


if __name__ == "__main__":
    main()
