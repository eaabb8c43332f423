"""The paper's ablations at toy scale, in the synthetic world (issue #7): fusion kinds (Table 9, Figure 4) and
disentangled vs shared captions (Table 3).

From the same pretrained towers (the demo recipe's stage 4), train bridges of every fusion kind with the same
budget (the recipe's bridge stage: bridges + the last block of each tower) for several seeds, plus DCA trained
and prompted with the shared caption instead of T_V / T_A; generate from the held-out clips' captions and score
sync (the world's event-level score and AV-Align) and text faithfulness (colour, shape, material). The event-level
sync is also set against its chance level (each clip's frames against every other clip's audio) and compared with
"none"'s of the same seed clip by clip.

    python experiments/synthetic/ablation.py --workers 2 [--recipe outputs/demo] [--extra-protocols]
        # the main table: 7 variants x 3 seeds, 1,200 bridge steps at batch 8 each, the recipe's bridge settings
        # (bf16 autocast, on a CPU with native bf16 or a GPU; --precision fp32 elsewhere); writes
        # experiments/synthetic/results/ablation.json and .png (the plot needs `pip install -e .[bench]`); about two hours
        # here from the recipe's pretrained towers (docs/synthetic.md, "The main table's time")
    python experiments/synthetic/ablation.py --gather-only
        # tabulate the runs finished so far, train nothing
    python experiments/synthetic/ablation.py --seeds 3 --bridge-steps 150 --bridge-batch 16 --bridge-lr 5e-4 --timesteps coupled \
            --time-bias 0 --results-name ablation-paper-150
        # the paper's bridge settings at a 150-step budget (nothing learns)
    python experiments/synthetic/ablation.py --seeds 3 --bridge-steps 1200 --bridge-batch 16 --results-name ablation-long
        # the recipe's own bridge budget (about 40 min per run here, two at a time)
    python experiments/synthetic/ablation.py --workers 2 --variants none,dca --seeds 3 --results-name ablation-towers-5x \
            --towers outputs/demo/runs/towers-more-2400steps-batch16-lr0.001+2400steps-batch16-lr0.001/checkpoint-002400
        # the table's settings, none and DCA, from towers trained five times the recipe's budget (experiments/synthetic/tower_budget.py)
    python experiments/synthetic/ablation.py --workers 2 --precision fp32
        # the bridge stage in float32 (the first recipe's tables): under bf16 autocast, on a CPU with native bf16
        # (AVX512-BF16 or AMX), attention runs as bf16 matrix products (bridgedit.cpu_attention), 1.6-2.2x the
        # training speed (experiments/synthetic/bridge_step_cost.py), the same scoring in float32 either way; the runs of each
        # precision are kept apart (folders -bf16)

Every setting but the batch (--bridge-batch: 8 by default, half the recipe's) defaults to the recipe's bridge stage.
The tables made before the recipe trained in bf16 (docs/synthetic.md, every table from the first recipe's towers, and
those examples above that name no precision) ran in float32: add --precision fp32 to repeat them.
By default (DEFAULT_PROTOCOLS) every run's joint samples are scored at the demo model's own guidance (w_v = 6,
w_a = 2, what `bridgedit generate` uses; SCORES are these samples', SCORES_PROTOCOL), and runs trained with each
stream's noise level drawn on its own (the recipe's setting) also on audio generated for the real held-out video
without audio guidance (`score_next_to_real`, w_a = 1). --extra-protocols adds three more (EXTRA_PROTOCOLS: the joint
samples at the paper's w_a = 7 and at w_a = 1, audio for the real video at w_a = 7; about 40 minutes more on the table
here). Runs scored before SCORES moved to the demo model's guidance measured them at the paper's; resuming such a run
scores its w_a = 2 samples in full and keeps the paper's per-clip scores under that protocol. Each protocol comes with
every variant's per-clip lead over "none" of the same seeds, and DCA's lead over every other variant on the seeds both
have. With --workers N each run is one one-thread process, N at a time, the next started as soon as one finishes (the
runs with bridges first, "none"'s last: the quickest to train).

Resumable: each run's result is kept under RECIPE/runs/ablation-STEPS-lrLR-TIMESTEPS... as soon as it is trained and
after each measurement (an interrupted run loses only the measurement under way), and what a run has is skipped
when re-run; a run scored before a measurement was added to this benchmark gets only that measurement. Each finished
run's result is also written to experiments/synthetic/results/ablation-runs/ (committed: a few KB per run) with a fingerprint of
the pretrained towers it started from, so that on another machine or in a later session whose recipe reproduces the
towers bit for bit, those runs are reused rather than trained again (runs from other towers never are). A run that is
exactly the recipe's own bridge stage (DCA, the recipe's seed and settings) uses RECIPE/runs/bridges. With no
finished recipe in RECIPE it first runs the recipe's stages up to the pretrained towers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from runs import (  # this folder's shared run bookkeeping
    BASELINE,
    BRIDGE_BATCH,
    BRIDGE_STEPS,
    COMMITTED_RUNS,
    DEFAULT_PROTOCOLS,
    DEMO_AUDIO_GUIDANCE,
    GAINS,
    JOINT_DIRECTION,
    JOINT_PROTOCOLS,
    PAPER_JOINT_PROTOCOL,
    PROPOSED_LEAD,
    PROTOCOLS,
    REAL_DIRECTION,
    RESULTS,
    SCORES_PROTOCOL,
    VARIANTS,
    SyncProtocol,
    aggregate,
    format_runs,
    guidance_label,
    longest_first,
    missing_measurements,
    parse_runs,
    recipe_run_name,
    run_name,
    scores_protocol,
    stored_result,
    towers_fingerprint,
    towers_tag_for,
    variant_settings,
)

from bridgedit.atomic import write_text_atomic
from bridgedit.config import ConfigError
from bridgedit.data.manifest import load_manifest
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic import recipe
from bridgedit.synthetic.scoring import (
    HELD_OUT_SEED,
    SCORES,
    score_model,
    score_next_to_real,
    score_references,
    summarize_scores,
)
from bridgedit.training.diagnostics import cross_modal_gain_on_cache
from bridgedit.training.trainer import bf16_unavailable_reason, checkpoint_folder

logger = logging.getLogger(__name__)


def run_variant(
    out: Path,
    dataset: Path,
    towers: Path,
    settings: recipe.RecipeSettings,
    variant: str,
    seed: int,
    test_records: list[dict],
    *,
    fingerprint: str,
    commit_to: Path | None,
    towers_tag: str = "",
    recipe_towers: bool = True,
    protocols: tuple[SyncProtocol, ...] = DEFAULT_PROTOCOLS,
) -> dict:
    """Train, score and measure one run, or reuse its result (`stored_result`), measuring only what it lacks of the
    cross-modal gain and `protocols` (`missing_measurements`). Results are written to RECIPE/runs and to `commit_to`
    (None: only RECIPE), under folder names carrying `towers_tag` (`towers_tag_for`). Runs from towers other than the
    recipe's (`recipe_towers` False, --towers) never stand for the recipe's own bridge stage, and their latents are
    cached apart from the recipe's; runs from the recipe's towers use RECIPE/runs/bridges where they are exactly that
    stage, even when tagged (towers made on another machine than the committed runs')."""
    name = run_name(variant, seed, settings, towers_tag)
    scores_path = out / "runs" / name / "scores.json"
    committed_path = None if commit_to is None else commit_to / f"{name}.json"
    run_settings = variant_settings(settings, variant, seed)
    training_name = (recipe_run_name(out, run_settings) if recipe_towers else None) or name
    cache = out / "cache" / ("bridges" if recipe_towers else f"bridges{towers_tag}")
    checkpoint = checkpoint_folder(out / "runs" / training_name, run_settings.bridge_steps)
    result = stored_result(
        out, settings, variant, seed, fingerprint=fingerprint, commit_to=commit_to, towers_tag=towers_tag
    )

    def save() -> None:  # after training and after each measurement: an interrupted run loses only the one under way
        result.setdefault("towers_fingerprint", fingerprint)
        if result["towers_fingerprint"] != fingerprint:
            raise SystemExit(
                f"{scores_path} was trained from other pretrained towers than {towers}; delete it to rerun"
            )
        scores_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(scores_path, json.dumps(result, indent=2))
        if committed_path is not None:
            committed_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(committed_path, json.dumps(result, indent=2) + "\n")

    if result is None:
        started = time.perf_counter()
        checkpoint = recipe.train_bridges(out, dataset, towers, run_settings, name=training_name, cache=cache)
        result = {
            "variant": variant,
            "seed": seed,
            "train_seconds": time.perf_counter() - started,
            "clips": len(test_records),
            "scores": {},
        }
        save()
    missing = missing_measurements(result, run_settings, protocols)
    if missing and not checkpoint.is_dir():  # e.g. a result committed from another machine whose towers match ours
        logger.warning(
            "%s lacks %s, but its trained model (%s) is not here to measure: tabulated without them "
            "(delete its result, %s, to train it again)",
            name,
            ", ".join(missing),
            checkpoint,
            committed_path or scores_path,
        )
        missing = []
    protocols = [protocol for protocol in PROTOCOLS if protocol.result_key in missing]
    pipe = BridgeDiTPipeline.from_pretrained(checkpoint) if protocols else None
    for protocol in protocols:
        started = time.perf_counter()
        if protocol.direction == JOINT_DIRECTION:
            per_clip, statistics = score_model(
                pipe, test_records, captions=run_settings.captions, seed=HELD_OUT_SEED, **protocol.overrides
            )
            result[protocol.result_key] = {JOINT_DIRECTION: statistics, "per_clip": per_clip}
            if protocol is SCORES_PROTOCOL:
                record_per_clip_scores(result, per_clip)
        else:
            result[protocol.result_key] = score_next_to_real(
                pipe,
                dataset,
                test_records,
                captions=run_settings.captions,
                seed=HELD_OUT_SEED,
                directions=(REAL_DIRECTION,),
                **protocol.overrides,
            )
        result[f"{protocol.result_key}_seconds"] = time.perf_counter() - started
        record_scores(result, protocol)
        save()
    if "cross_modal_gain" in missing:  # runs scored before the gain was measured get it now
        started = time.perf_counter()
        result["cross_modal_gain"] = cross_modal_gain_on_cache(
            checkpoint, dataset, cache, captions=run_settings.captions
        )
        result["cross_modal_gain_seconds"] = time.perf_counter() - started
        for stream in ("audio", "video"):
            result["scores"][f"{stream}_gain_pct"] = 100 * result["cross_modal_gain"][stream]["mean_relative_gain"]
    save()
    return result


def record_per_clip_scores(result: dict, per_clip: list[dict]) -> None:
    """Make SCORES_PROTOCOL's per-clip scores the run's SCORES. A run scored before kept the paper's samples' at the
    top level: they move into that protocol's result (`per_clip_scores`), so that nothing measured is lost."""
    earlier_protocol, earlier = scores_protocol(result), result.pop("per_clip", None)
    if earlier is not None and earlier_protocol != SCORES_PROTOCOL.result_key:
        result.setdefault(earlier_protocol, {}).setdefault("per_clip", earlier)
    result["scores"].update(summarize_scores(per_clip))
    result["scores_protocol"] = SCORES_PROTOCOL.result_key


def record_scores(result: dict, protocol: SyncProtocol) -> None:
    """Copy a protocol's sync and sync above chance from its statistics into the run's scores."""
    for score, statistic in protocol.score_names().items():
        result["scores"][score] = result[protocol.result_key][protocol.direction][statistic]


def worker_arguments(argv: list[str], share: list[tuple[str, int]]) -> list[str]:
    """This script's own command line for one worker: the same settings, without --workers, with --only SHARE."""
    arguments, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument == "--workers":
            skip = True
        elif not argument.startswith("--workers="):
            arguments.append(argument)
    return arguments + ["--only", format_runs(share)]


def run_workers(
    pending: list[tuple[str, int]],
    workers: int,
    script: str = __file__,
    poll_seconds: float = 2.0,
    argv: list[str] | None = None,
) -> None:
    """Train and score the pending runs in `workers` one-thread processes at once (on 2 CPU cores two one-thread
    trainings side by side make more steps per second than one two-thread one), one process per run, each started
    as soon as a process finishes, in `pending`'s order: each is `script` (this one, or another benchmark with the
    same --workers / --only arguments) with this command line (or `argv`) and --only RUN. A failed run does not stop
    the others; the failures are named at the end."""
    import os
    import subprocess

    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    arguments = sys.argv[1:] if argv is None else argv
    queue, running, failed = list(pending), {}, []
    while queue or running:
        while queue and len(running) < workers:
            run = queue.pop(0)
            running[run] = subprocess.Popen(
                [sys.executable, script, *worker_arguments(arguments, [run])], env=environment
            )
        time.sleep(poll_seconds)
        for run, process in list(running.items()):
            if (code := process.poll()) is not None:
                del running[run]
                if code:
                    failed.append(f"{format_runs([run])} (exit code {code})")
    if failed:
        raise SystemExit(f"runs failed: {', '.join(failed)}; finished runs are kept, run the command again to resume")


def settings_steps(out: Path) -> int:
    """The bridge budget the recipe in `out` was run with."""
    return json.loads((out / "recipe.json").read_text())["bridge_steps"]


def plot(table: dict, references: dict, path: Path, scores_protocol_of_table: str = SCORES_PROTOCOL.result_key) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(table)

    def has(names: tuple[str, ...]) -> bool:
        return all(name in table[v] for v in variants for name in names)

    panels, legend = [], {}  # (score names, title); score name -> its label in the plot
    scored_on = next(p for p in JOINT_PROTOCOLS if p.result_key == scores_protocol_of_table)
    above_chance = tuple(scored_on.score_names())[1]
    joint = tuple(name for name in ("sync", "av_align", above_chance) if has((name,)))
    if joint:
        panels.append((joint, f"synchrony, {guidance_label(scored_on)}"))
        legend[above_chance] = "sync above chance"
    for protocol in (p for p in PROTOCOLS if p is not scored_on):  # the one SCORES are measured on is the first panel
        names = tuple(protocol.score_names())
        if has(names[:1]):
            panels.append((names, f"sync of {guidance_label(protocol)}"))
            legend.update({name: statistic.replace("_", " ") for name, statistic in protocol.score_names().items()})
    if has(("colour", "shape", "material")):
        panels.append((("colour", "shape", "material"), f"text faithfulness (accuracy), {guidance_label(scored_on)}"))
    columns = 2 if len(panels) == 4 else min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 3.8 * rows), squeeze=False)
    for axis in axes.flat[len(panels) :]:  # a grid with more cells than panels
        axis.set_visible(False)
    for axis, (names, title) in zip(axes.flat, panels):
        width = 0.8 / len(names)
        lowest = 0.0
        for offset, name in enumerate(names):
            means = [table[v][name]["mean"] for v in variants]
            stds = [table[v][name]["std"] for v in variants]
            positions = np.arange(len(variants)) + (offset - (len(names) - 1) / 2) * width
            axis.bar(positions, means, width, yerr=stds, capsize=3, label=legend.get(name, name).replace("_", " "))
            for variant_index, variant in enumerate(variants):  # each seed as a dot
                axis.scatter(
                    [positions[variant_index]] * len(table[variant][name]["per_seed"]),
                    table[variant][name]["per_seed"],
                    s=8,
                    color="black",
                    zorder=3,
                )
                lowest = min(lowest, *table[variant][name]["per_seed"])
        if names[0] == "sync" and "codec" in references:  # the ceiling: real clips through the model's codecs
            axis.axhline(
                references["codec"]["sync"],
                color="gray",
                linestyle="--",
                linewidth=1,
                label="sync, real clips through the codecs",
            )
        axis.axhline(0, color="black", linewidth=0.5)
        axis.set_xticks(np.arange(len(variants)), [v.replace(" (", "\n(") for v in variants], fontsize=8)
        axis.set_ylim(min(0.0, lowest - 0.05), 1)  # sync above chance can be below 0
        axis.set_title(title)
        axis.legend(fontsize=8)
    figure.suptitle("Synthetic-world ablation: mean ± std over seeds (dots: seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def reference_scores(
    out: Path, dataset: Path, towers: Path, test_records: list[dict], towers_tag: str = ""
) -> dict[str, dict]:
    """The held-out clips, the same through the towers' codecs, and the recipe's own DCA model (its longer bridge
    budget) at the paper's and at the demo model's audio guidance; kept in RECIPE/runs/references[TOWERS_TAG].json,
    where only what it lacks is scored (delete it to score everything again)."""
    path = out / "runs" / f"references{towers_tag}.json"
    references = json.loads(path.read_text()) if path.is_file() else {}
    wanted = {}  # name -> the generation settings of the demo model's samples
    if (out / "model" / "model_index.json").is_file():
        name = f"demo model (dca, {settings_steps(out)} steps)"
        wanted = {
            name: PAPER_JOINT_PROTOCOL.overrides,
            f"{name}, w_a = {DEMO_AUDIO_GUIDANCE:g}": {"audio_guidance": DEMO_AUDIO_GUIDANCE},
        }
    missing = [name for name in wanted if name not in references]
    if references and not missing:
        return references
    if not references:
        references = {
            name: summarize_scores(scores)
            for name, scores in score_references(
                BridgeDiTPipeline.from_pretrained(towers), dataset, test_records
            ).items()
        }
    demo = BridgeDiTPipeline.from_pretrained(out / "model") if missing else None
    for name in missing:
        per_clip, _ = score_model(demo, test_records, seed=HELD_OUT_SEED, **wanted[name])
        references[name] = summarize_scores(per_clip)
    path.parent.mkdir(parents=True, exist_ok=True)  # with --towers the recipe may never have run a stage here
    write_text_atomic(path, json.dumps(references, indent=2))
    return references


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="outputs/demo", help="the demo recipe's output folder (reused)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    parser.add_argument(
        "--bridge-steps",
        type=int,
        default=BRIDGE_STEPS,
        help="the bridge-training budget of every run (the same for all variants)",
    )
    parser.add_argument(
        "--bridge-lr",
        type=float,
        default=recipe.RecipeSettings.bridge_lr,
        help="peak learning rate of the bridge stage",
    )
    parser.add_argument(
        "--time-encoding",
        action="store_true",
        help="bridges add a sinusoidal encoding of each token's time (BridgeConfig.time_encoding)",
    )
    parser.add_argument(
        "--time-bias",
        type=float,
        default=recipe.DEMO_BRIDGE.time_bias,
        help="ALiBi slope per latent frame in the bridges' attention (BridgeConfig.time_bias; 0 = off)",
    )
    parser.add_argument(
        "--timesteps",
        choices=("coupled", "independent"),
        default=recipe.RecipeSettings.bridge_timesteps,
        help="bridge training: one noise level for both streams (t_V = 1000 t_A, the paper's) or one each",
    )
    parser.add_argument("--bridge-batch", type=int, default=BRIDGE_BATCH, help="batch size of the bridge stage")
    parser.add_argument(
        "--precision",
        choices=tuple(recipe.PRECISION_MODES),
        default=recipe.RecipeSettings.bridge_precision,
        help="bridge training under bf16 autocast (the recipe's; faster on a CPU with native bf16, "
        "experiments/synthetic/bridge_step_cost.py; refused on other CPUs) or in float32; scoring is float32 either way",
    )
    parser.add_argument(
        "--bridge-blocks",
        help="comma-separated tower blocks that get a bridge (video and audio alike; the recipe's: 1,3)",
    )
    parser.add_argument(
        "--towers",
        help="start every run from these pretrained towers (a model folder, e.g. a "
        "checkpoint of experiments/synthetic/tower_budget.py) instead of the recipe's stage 4; their runs are "
        "kept apart, under folder names that carry the towers' fingerprint",
    )
    parser.add_argument(
        "--results-name", default="ablation", help="write experiments/synthetic/results/NAME.json and NAME.png"
    )
    parser.add_argument("--scale", type=int, default=1, help="divide the recipe's budgets by N (a quick look)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="train the runs in N one-thread processes side by side (2 on a 2-core machine)",
    )
    parser.add_argument(
        "--extra-protocols",
        action="store_true",
        help="also score every run both streams generated without audio guidance (w_a = 1) and audio "
        "for the real video at the paper's guidance (w_a = 7), as the committed table was: about half an "
        "hour more on the table here",
    )
    parser.add_argument(
        "--gather-only",
        action="store_true",
        help="train and score nothing: tabulate the runs already finished (the others are listed as not yet run, "
        "measurements a finished run lacks as not yet measured)",
    )
    parser.add_argument("--only", help=argparse.SUPPRESS)  # a worker's share: VARIANT@SEED;VARIANT@SEED...
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    if args.precision == "bf16" and (reason := bf16_unavailable_reason()):
        raise SystemExit(
            f"--precision bf16: {reason}, where bf16 is emulated and the trainer would fall back to "
            "float32; use --precision fp32"
        )
    out = Path(args.recipe)
    # a recipe folder's own settings (the first demo's world and codec for one made before they were settings), else
    # today's recipe
    settings = recipe.RecipeSettings.of_model(out) if (out / "recipe.json").is_file() else recipe.RecipeSettings()
    if args.scale > 1:
        settings = recipe.smaller(settings, args.scale)
    try:  # a recipe folder made with other settings (an older bridgedit's defaults) is not extended
        recipe.check_same_settings(out, settings)
    except ConfigError as error:
        raise SystemExit(f"--recipe {out}: {error}") from None
    dataset = recipe.make_world(out, settings)
    if args.towers:
        towers = Path(args.towers)
        if not (towers / "model_index.json").is_file():
            raise SystemExit(f"--towers {towers}: not a model folder (no model_index.json)")
    else:
        towers = recipe.pretrain_towers(out, dataset, settings)  # the recipe's stage 4, reused when it exists
    settings = replace(
        settings,
        bridge_steps=max(1, args.bridge_steps // args.scale),
        bridge_lr=args.bridge_lr,
        bridge_batch_size=args.bridge_batch,
        bridge={**settings.bridge, "time_encoding": args.time_encoding, "time_bias": args.time_bias},
        bridge_timesteps=args.timesteps,
        bridge_precision=args.precision,
    )
    if args.bridge_blocks:
        blocks = [int(i) for i in args.bridge_blocks.split(",")]
        settings = replace(settings, bridge={**settings.bridge, "video_blocks": blocks, "audio_blocks": blocks})
    test_records = load_manifest(dataset, split="test")
    variants = [v for v in VARIANTS if v in args.variants.split(",")]
    started = time.perf_counter()
    fingerprint = towers_fingerprint(towers)
    commit_to = COMMITTED_RUNS if args.scale == 1 else None  # quick looks are never committed
    untagged_folder = None if commit_to is None else (commit_to / run_name(BASELINE, 0, settings)).parent
    recipe_towers = not args.towers
    towers_tag = towers_tag_for(fingerprint, recipe_towers=recipe_towers, committed_folder=untagged_folder)
    references = reference_scores(out, dataset, towers, test_records, towers_tag)
    runs = [(variant, seed) for seed in range(args.seeds) for variant in variants]
    protocols = PROTOCOLS if args.extra_protocols else DEFAULT_PROTOCOLS

    def train_and_score(variant: str, seed: int) -> dict:
        return run_variant(
            out,
            dataset,
            towers,
            settings,
            variant,
            seed,
            test_records,
            fingerprint=fingerprint,
            commit_to=commit_to,
            towers_tag=towers_tag,
            recipe_towers=recipe_towers,
            protocols=protocols,
        )

    if args.only is not None:  # a worker of --workers: train and score its share, then leave the table to the parent
        for variant, seed in parse_runs(args.only):
            train_and_score(variant, seed)
        return
    stored = {
        run: stored_result(out, settings, *run, fingerprint=fingerprint, commit_to=commit_to, towers_tag=towers_tag)
        for run in runs
    }
    if args.gather_only:  # tabulate what is trained and scored, measure nothing
        pending = [run for run in runs if stored[run] is None]
        results = [stored[run] for run in runs if stored[run] is not None]
        unmeasured = {
            f"{variant} seed {seed}": missing_measurements(
                stored[(variant, seed)], variant_settings(settings, variant, seed), protocols
            )
            for variant, seed in runs
            if stored[(variant, seed)] is not None
        }
    else:
        pending = [
            run
            for run in runs
            if stored[run] is None or missing_measurements(stored[run], variant_settings(settings, *run), protocols)
        ]
        if args.workers > 1 and len(pending) > 1:
            run_workers(longest_first(pending, stored), args.workers)
        results = [train_and_score(variant, seed) for variant, seed in runs]
        unmeasured = {}
    table = aggregate(results)
    scored_on = {scores_protocol(r) for r in results} - {None}  # as `aggregate` counts them
    scored_on = scored_on.pop() if len(scored_on) == 1 else None  # None: SCORES not in the table (`aggregate`)
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "benchmark": "ablation",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "device": "cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "recipe": settings.to_dict(),
        "towers": towers.as_posix(),
        "towers_fingerprint": fingerprint,
        "test_clips": len(test_records),
        "seeds": args.seeds,
        "scores_protocol": None
        if scored_on is None
        else next(p.label for p in JOINT_PROTOCOLS if p.result_key == scored_on),
        "seconds_this_run": time.perf_counter() - started,
        "variants": table,
        "not_yet_run": [f"{variant} seed {seed}" for variant, seed in pending] if args.gather_only else [],
        "not_yet_measured": {run: keys for run, keys in unmeasured.items() if keys},  # --gather-only: left out
        "references": references,  # the held-out clips, the same through the codecs, and the recipe's model
    }
    json_path, png_path = RESULTS / f"{args.results_name}.json", RESULTS / f"{args.results_name}.png"
    write_text_atomic(json_path, json.dumps(summary, indent=2) + "\n")
    columns = [n for n in SCORES + GAINS if all(n in row for row in table.values())]
    print(f"SCORES on the samples of: {summary['scores_protocol']}")
    print(f"{'variant':<22}" + "".join(f"{name:>18}" for name in columns))
    for variant, row in table.items():
        print(f"{variant:<22}" + "".join(f"{row[n]['mean']:>11.3f} ± {row[n]['std']:.3f}" for n in columns))
    for name, row in references.items():
        print(f"{'(' + name + ')':<22}" + "".join(f"{row[n]:>11.3f}        " for n in SCORES))
    for protocol in PROTOCOLS:  # sync next to its chance level and the lead over BASELINE, where scored
        for variant, row in table.items():
            names = protocol.score_names()
            if all(name in row for name in names):
                cells = "".join(
                    f"{statistic}={row[n]['mean']:.3f} ± {row[n]['std']:.3f}  " for n, statistic in names.items()
                )
                for lead_name in (f"lead over {BASELINE}", PROPOSED_LEAD):
                    if lead := row.get(lead_name, {}).get(protocol.label):
                        cells += (
                            f"{lead_name}: {lead['mean']:+.3f} ± {lead['standard_error']:.3f} "
                            f"(p = {lead['p_value']:.2g})  "
                        )
                print(f"{variant:<22}{protocol.label:<36}{cells}")
    try:
        plot(table, references, png_path, scored_on or SCORES_PROTOCOL.result_key)
        print(f"wrote {json_path} and {png_path}")
    except ImportError:
        print(f"wrote {json_path} (no plot: pip install -e .[bench] for matplotlib)")


if __name__ == "__main__":
    main()
