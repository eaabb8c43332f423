"""The laboratory's shared run bookkeeping: the ablation's variants and scoring protocols, run records (names,
the towers' fingerprints, results committed under results/ablation-runs/, what a run still lacks), and the table's
statistics (per-variant means over seeds, paired leads). `ablation.py` trains and scores runs with it;
`lead_across_towers.py`, `guidance_scan.py` and `ablation_time.py` read runs through it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from bridgedit.generation import GenerationSettings
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic import recipe
from bridgedit.synthetic.scoring import SCORES, paired_lead

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).parent / "results"
#: every finished run's result, committed (see the module docstring)
COMMITTED_RUNS = RESULTS / "ablation-runs"
#: per run, besides SCORES: how much lower each stream's loss is next to the matching rather than another clip's
#: other stream, in % (bridgedit.training.diagnostics; 0 = the bridges carry nothing)
GAINS = ("audio_gain_pct", "video_gain_pct")
#: per run trained with independent noise levels, besides SCORES: audio generated next to the real held-out video
#: (`score_next_to_real`; held clean, so the video tower's own failures do not count): its sync and how far that is
#: above its chance level. The reverse direction (video for the real audio) is left to experiments/synthetic/next_to_real.py:
#: in this world the picture never depends on the sound, and the cross-modal video gain already measures it.
REAL_DIRECTION = "audio for the real video"
#: both streams generated from a held-out clip's captions, the samples SCORES are measured on
JOINT_DIRECTION = "both streams generated"


class SyncProtocol(NamedTuple):
    """One way of generating for the held-out clips whose event-level sync is scored next to its chance level (each
    clip's frames against every other clip's audio; `event_statistics`) and compared with BASELINE's clip by clip."""

    label: str  # its name in the table's leads over BASELINE
    result_key: str  # where a run's result keeps {direction: its event statistics}
    score_prefix: str  # its statistics among the run's scores: PREFIX_sync and PREFIX_sync_above_chance
    direction: str  # JOINT_DIRECTION (`score_model`) or REAL_DIRECTION (`score_next_to_real`)
    overrides: dict  # generation settings that differ from the model's own (`generate_for`)

    def score_names(self) -> dict[str, str]:
        """score name -> the `event_statistics` statistic it holds"""
        return {f"{self.score_prefix}_sync": "sync", f"{self.score_prefix}_sync_above_chance": "sync_above_chance"}


#: the paper's audio guidance (Table 5), which the runs' checkpoints do not store (the models' own default before the
#: demo model's was lowered): the protocols without "w_a =" in their label are at this scale, named so that a run's
#: scores never depend on the defaults of the towers it started from
PAPER_AUDIO_GUIDANCE = GenerationSettings.audio_guidance
#: the demo model's own audio guidance (docs/synthetic.md, "The audio guidance scale and DCA's lead")
DEMO_AUDIO_GUIDANCE = recipe.DEMO_SAMPLING["audio_guidance"]
#: both streams generated, at the paper's guidance, at the demo model's audio guidance and without audio guidance
#: (w_a = 1): the lower two take away the audio guidance's spurious onsets (below) from the joint samples. Each joint
#: protocol's result keeps its samples' per-clip SCORES too ("per_clip")
PAPER_JOINT_PROTOCOL = SyncProtocol(
    JOINT_DIRECTION, "both_generated", "both_generated", JOINT_DIRECTION, {"audio_guidance": PAPER_AUDIO_GUIDANCE}
)
JOINT_PROTOCOLS = (
    PAPER_JOINT_PROTOCOL,
    SyncProtocol(
        f"{JOINT_DIRECTION}, w_a = {DEMO_AUDIO_GUIDANCE:g}",
        f"both_generated_wa{DEMO_AUDIO_GUIDANCE:g}",
        f"both_generated_wa{DEMO_AUDIO_GUIDANCE:g}",
        JOINT_DIRECTION,
        {"audio_guidance": DEMO_AUDIO_GUIDANCE},
    ),
    SyncProtocol(
        f"{JOINT_DIRECTION}, w_a = 1",
        "both_generated_unguided",
        "both_generated_unguided",
        JOINT_DIRECTION,
        {"audio_guidance": 1.0},
    ),
)
#: the joint samples a run's SCORES (the table's sync, AV-Align and faithfulness columns) are measured on: the demo
#: model's own guidance, the one `bridgedit generate` uses. Runs scored before (the committed tables from towers
#: 87e4c0f3 and earlier) have no "scores_protocol" and measured them at the paper's (`scores_protocol`)
SCORES_PROTOCOL = JOINT_PROTOCOLS[1]


#: at the paper's guidance (w_v = 6, w_a = 7), and without audio guidance (w_a = 1): at w_a = 7 these
#: small towers' audio comes in bursts, 5-6 onsets per clip where the world makes 1.6, which caps every sync score
#: (docs/synthetic.md, "What the samples look like")
REAL_PROTOCOLS = (
    SyncProtocol(
        REAL_DIRECTION, "next_to_real", "audio_for_real_video", REAL_DIRECTION, {"audio_guidance": PAPER_AUDIO_GUIDANCE}
    ),
    SyncProtocol(
        f"{REAL_DIRECTION}, w_a = 1",
        "next_to_real_unguided",
        "audio_for_real_video_unguided",
        REAL_DIRECTION,
        {"audio_guidance": 1.0},
    ),
)
PROTOCOLS = (*JOINT_PROTOCOLS, *REAL_PROTOCOLS)
#: scored for every run by default (the table's time, about two hours here, is sized with these two): both streams
#: generated at the demo model's guidance (SCORES_PROTOCOL: SCORES, and DCA's lead over "none", the issue's goal) and
#: audio for the real video without audio guidance, where the kinds that carry the video into the audio stand apart
#: most clearly
DEFAULT_PROTOCOLS = (SCORES_PROTOCOL, REAL_PROTOCOLS[1])
#: --extra-protocols adds these (about 4 minutes more a run, 40 on the table): both streams generated at the paper's
#: guidance (w_a = 7) and without audio guidance, audio for the real video at the paper's guidance
EXTRA_PROTOCOLS = tuple(protocol for protocol in PROTOCOLS if protocol not in DEFAULT_PROTOCOLS)
#: the variant every other one's sync is compared with, clip by clip, in each protocol
BASELINE = "none"
#: the paper's fusion: its lead over every other variant, clip by clip on the seeds both have, is in the table too
#: (Table 9's ordering; against the shared caption, Table 3's point)
PROPOSED = "dca"
PROPOSED_LEAD = f"{PROPOSED}'s lead over it"
FUSIONS = ("none", "additive", "v2a", "a2v", "full_attention", "dca")
SHARED = "dca (shared caption)"
#: the bridge budget per run by default: the recipe's 1,200 steps at half its batch (16), half its work (5-10 minutes
#: of training in bf16 plus about 4 of scoring per run here, two one-thread runs side by side, --workers 2); 600 steps
#: at batch 8 taught DCA's bridges less than half as much, at lr 1e-2 (or also batch 4) less still (docs/synthetic.md,
#: "budget probes"), and at the paper's settings 150 steps taught no bridge anything
BRIDGE_STEPS = 1200
BRIDGE_BATCH = 8
VARIANTS = FUSIONS + (SHARED,)


def variant_settings(base: recipe.RecipeSettings, variant: str, seed: int) -> recipe.RecipeSettings:
    fusion = "dca" if variant == SHARED else variant
    return replace(
        base, seed=seed, bridge={**base.bridge, "fusion": fusion}, captions="shared" if variant == SHARED else "hvgc"
    )


def run_name(variant: str, seed: int, settings: recipe.RecipeSettings, towers_tag: str = "") -> str:
    """ablation-STEPS-lrLR-TIMESTEPS[-te][-tbSLOPE][-se][-batchB][-blocksIJ][-bf16][TOWERS_TAG]/VARIANT-seedS: the folder names
    every bridge-stage setting the ablation varies, and other towers than the recipe's (`towers_tag`), so runs with
    other settings are never reused for each other."""
    tag = f"ablation-{settings.bridge_steps}-lr{settings.bridge_lr:g}-{settings.bridge_timesteps}"
    if settings.bridge.get("time_encoding"):
        tag += "-te"
    if settings.bridge.get("time_bias"):
        tag += f"-tb{settings.bridge['time_bias']:g}"
    if settings.bridge.get("space_encoding"):
        tag += "-se"
    if settings.bridge_batch_size != recipe.RecipeSettings.bridge_batch_size:
        tag += f"-batch{settings.bridge_batch_size}"
    if list(settings.bridge["video_blocks"]) != list(recipe.DEMO_BRIDGE.video_blocks):
        tag += "-blocks" + "".join(str(i) for i in settings.bridge["video_blocks"])
    if settings.bridge_precision != "fp32":  # named whatever the recipe's default: the first runs were fp32, untagged
        tag += f"-{settings.bridge_precision}"
    tag += towers_tag
    return f"{tag}/{variant.replace(' ', '_').replace('(', '').replace(')', '')}-seed{seed}"


def towers_fingerprint(towers: Path) -> str:
    """sha256 over every weight of the pretrained towers' pipeline (both towers, text encoders, codecs) in name order:
    equal exactly when two recipes produced bit-identical towers."""
    pipe = BridgeDiTPipeline.from_pretrained(towers)
    digest = hashlib.sha256()
    for tower, tower_pipe in (("video", pipe.video_pipe), ("audio", pipe.audio_pipe)):
        for part_name, part in sorted(tower_pipe.components.items()):
            if not isinstance(part, torch.nn.Module):
                continue
            for key, tensor in sorted(part.state_dict().items()):
                digest.update(f"{tower}.{part_name}.{key}".encode())
                digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def towers_tag_for(fingerprint: str, recipe_towers: bool, committed_folder: Path | None = None) -> str:
    """ "" for the recipe's own towers, else "-towers" + the first 8 hex digits of their fingerprint: runs from other
    towers (--towers) get folders and a latent cache of their own. The recipe's towers are tagged too when
    `committed_folder` (where the runs of these settings are committed, untagged) holds runs from other towers: a
    recipe run on another machine does not make bit-identical towers, and its runs must not overwrite those."""
    if recipe_towers and not committed_from_other_towers(committed_folder, fingerprint):
        return ""
    return f"-towers{fingerprint[:8]}"


def committed_from_other_towers(folder: Path | None, fingerprint: str) -> bool:
    """Whether any run result committed in `folder` was trained from towers with another fingerprint."""
    if folder is None or not folder.is_dir():
        return False
    return any(json.loads(path.read_text()).get("towers_fingerprint") != fingerprint for path in folder.glob("*.json"))


def committed_result(path: Path, fingerprint: str) -> dict | None:
    """A committed run's result, if it started from the same towers."""
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("towers_fingerprint") != fingerprint:
        logging.info("not reusing %s: it was trained from other pretrained towers", path)
        return None
    logging.info("reusing %s (trained from these same towers)", path)
    return result


def recipe_run_name(out: Path, run_settings: recipe.RecipeSettings) -> str | None:
    """ "bridges" when a run is exactly the recipe's own bridge stage (its settings are those in RECIPE/recipe.json,
    written when `bridgedit synthetic recipe` starts): the ablation then uses that run instead of training it again."""
    recorded = out / "recipe.json"
    if not recorded.is_file():
        return None
    # a setting added since that recipe ran is missing there: it ran with what that setting meant then (of_model)
    recorded_settings = recipe.RecipeSettings.of_model(out).to_dict()
    if json.loads(json.dumps(recorded_settings)) == json.loads(json.dumps(run_settings.to_dict())):
        return "bridges"
    return None


def scores_protocol(result: dict) -> str | None:
    """The result key of the joint protocol whose samples a run's SCORES were measured on (runs scored before
    SCORES_PROTOCOL was the demo model's guidance did not name it: theirs were the paper's); None for a run trained
    but not yet scored so."""
    if "scores_protocol" in result:
        return result["scores_protocol"]
    return PAPER_JOINT_PROTOCOL.result_key if "per_clip" in result else None


def per_clip_scores(result: dict, protocol: SyncProtocol) -> list[dict] | None:
    """A run's per-clip SCORES on a joint protocol's samples, if kept: in the protocol's result, or, in a run scored
    before each joint protocol kept its own, the paper's at the top level."""
    if "per_clip" in result.get(protocol.result_key, {}):
        return result[protocol.result_key]["per_clip"]
    return result.get("per_clip") if scores_protocol(result) == protocol.result_key else None


def missing_measurements(
    result: dict, run_settings: recipe.RecipeSettings, protocols: tuple[SyncProtocol, ...] = DEFAULT_PROTOCOLS
) -> list[str]:
    """What a finished run's result still lacks, by result key: the cross-modal gain and each of `protocols` (in
    PROTOCOLS' order) it was not scored with, e.g. those added to the benchmark after it was scored or asked for now
    (--extra-protocols); the next-to-real protocols only for runs trained with independent noise levels, the only
    ones for which a clean stream next to a noisy one is in distribution. SCORES_PROTOCOL counts as missing until the
    run's SCORES were measured on its samples (`scores_protocol`), i.e. in runs scored before it was their protocol."""
    wanted = [
        "cross_modal_gain",
        *(
            protocol.result_key
            for protocol in PROTOCOLS
            if protocol in protocols
            and (protocol.direction == JOINT_DIRECTION or run_settings.bridge_timesteps == "independent")
        ),
    ]
    return [
        key
        for key in wanted
        if key not in result or (key == SCORES_PROTOCOL.result_key and scores_protocol(result) != key)
    ]


def stored_result(
    out: Path,
    settings: recipe.RecipeSettings,
    variant: str,
    seed: int,
    *,
    fingerprint: str,
    commit_to: Path | None,
    towers_tag: str = "",
) -> dict | None:
    """A run's result as far as it was scored: from RECIPE/runs, else committed from towers with this fingerprint."""
    name = run_name(variant, seed, settings, towers_tag)
    scores_path = out / "runs" / name / "scores.json"
    if scores_path.is_file():
        return json.loads(scores_path.read_text())
    return None if commit_to is None else committed_result(commit_to / f"{name}.json", fingerprint)


def format_runs(runs: list[tuple[str, int]]) -> str:
    """[("dca", 0), ("none", 2)] -> "dca@0;none@2" (variant names have spaces, never '@' or ';')."""
    return ";".join(f"{variant}@{seed}" for variant, seed in runs)


def parse_runs(text: str) -> list[tuple[str, int]]:
    runs = []
    for item in filter(None, text.split(";")):
        variant, _, seed = item.rpartition("@")
        if variant not in VARIANTS or not seed.isdigit():
            raise SystemExit(f"--only: {item!r} is not VARIANT@SEED with VARIANT one of {', '.join(VARIANTS)}")
        runs.append((variant, int(seed)))
    return runs


def longest_first(pending: list[tuple[str, int]], stored: dict[tuple[str, int], dict | None]) -> list[tuple[str, int]]:
    """The order to hand runs to the workers in, so that they finish close together: runs to train before runs only
    to measure (`stored` holds a result for those), and of the runs to train BASELINE's (no bridges: the quickest)
    last; otherwise as given."""
    return sorted(pending, key=lambda run: (stored.get(run) is not None, run[0] == BASELINE))


def aggregate(results: list[dict]) -> dict:
    """Per variant: mean, std and per-seed values of every score all its runs have (SCORES, where every run measured
    them on the same protocol's samples; GAINS; each sync protocol's), and, per sync protocol, the paired lead over
    BASELINE's runs of the same seeds and PROPOSED's paired lead over the variant's runs (PROPOSED_LEAD)."""
    table = {}
    scored_on = {scores_protocol(r) for r in results} - {None}  # runs not yet scored name none
    if len(scored_on) > 1:  # SCORES from different samples are never averaged together
        logger.warning(
            "the runs' SCORES were measured on different samples (%s): left out of the table",
            ", ".join(sorted(scored_on)),
        )
        results = [{**r, "scores": {k: v for k, v in r["scores"].items() if k not in SCORES}} for r in results]
    by_variant = {
        variant: sorted((r for r in results if r["variant"] == variant), key=lambda r: r["seed"])
        for variant in VARIANTS
    }
    for variant, runs in by_variant.items():
        if not runs:
            continue
        protocol_scores = tuple(name for protocol in PROTOCOLS for name in protocol.score_names())
        names = tuple(n for n in SCORES + GAINS + protocol_scores if all(n in r["scores"] for r in runs))
        table[variant] = {
            "seeds": [r["seed"] for r in runs],
            **{
                name: {
                    "mean": float(np.mean([r["scores"][name] for r in runs])),
                    "std": float(np.std([r["scores"][name] for r in runs])),
                    "per_seed": [r["scores"][name] for r in runs],
                }
                for name in names
            },
        }
        if variant != BASELINE and (leads := leads_over(runs, {r["seed"]: r for r in by_variant[BASELINE]})):
            table[variant][f"lead over {BASELINE}"] = leads
        if variant != PROPOSED:  # on the seeds both have
            theirs = {r["seed"]: r for r in runs}
            if leads := leads_over([r for r in by_variant[PROPOSED] if r["seed"] in theirs], theirs):
                table[variant][PROPOSED_LEAD] = leads
    return table


def leads_over(runs: list[dict], other_by_seed: dict[int, dict]) -> dict[str, dict[str, float]]:
    """Per sync protocol scored in every one of `runs` and in the other variant's run of each one's seed: the lead of
    `runs` over those runs, clip by clip (`paired_lead`; the run of seed k against the other's run of seed k)."""
    leads = {}
    for protocol in PROTOCOLS:
        key = protocol.result_key
        if runs and all(key in r and key in other_by_seed.get(r["seed"], {}) for r in runs):
            leads[protocol.label] = paired_lead(
                [r[key] for r in runs], [other_by_seed[r["seed"]][key] for r in runs], protocol.direction
            )
    return leads


def guidance_label(protocol: SyncProtocol) -> str:
    """A protocol's label with its audio guidance named."""
    return (
        protocol.label
        if "w_a =" in protocol.label
        else f"{protocol.label} (w_a = {PAPER_AUDIO_GUIDANCE:g}, the paper's)"
    )
