"""The laboratory's shared run bookkeeping (experiments/synthetic/runs.py) and the ablation's resumable runs: a result
is reused only from bit-identical towers, a run is trained once and measured only for what it lacks, and the table
pairs runs of equal seeds. The scripts that read runs through it are not tested one by one."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bridgedit import tiny
from bridgedit.synthetic.recipe import RecipeSettings
from bridgedit.synthetic.scoring import paired_lead
from bridgedit.training.trainer import checkpoint_folder

pytestmark = pytest.mark.slow  # the laboratory's, not the product's: `make test-fast` leaves it out

LABORATORY = Path(__file__).resolve().parents[1] / "experiments" / "synthetic"
sys.path.insert(0, str(LABORATORY))  # the laboratory's scripts import its shared modules by name
import ablation  # noqa: E402
import lead_across_towers  # noqa: E402
import runs  # noqa: E402


def test_a_committed_result_is_reused_only_from_bit_identical_towers(tmp_path):
    pipe = tiny.bridgedit_pipeline(seed=0)
    pipe.save_pretrained(tmp_path / "a", copy_towers=True)
    pipe.save_pretrained(tmp_path / "b", copy_towers=True)
    with torch.no_grad():  # one element of one codec weight, far from the towers' transformers
        next(pipe.audio_pipe.vae.parameters()).view(-1)[0] += 1e-6
    pipe.save_pretrained(tmp_path / "c", copy_towers=True)
    first = runs.towers_fingerprint(tmp_path / "a")
    assert len(first) == 64
    assert runs.towers_fingerprint(tmp_path / "b") == first
    assert runs.towers_fingerprint(tmp_path / "c") != first

    folder = tmp_path / "ablation-1200-lr0.005-independent-tb2"
    path = folder / "dca-seed0.json"
    ours, theirs = "a" * 64, "b" * 64
    assert runs.committed_result(path, ours) is None  # nothing committed
    assert runs.towers_tag_for(ours, recipe_towers=True, committed_folder=folder) == ""
    folder.mkdir()
    path.write_text(json.dumps({"variant": "dca", "seed": 0, "towers_fingerprint": ours, "scores": {"sync": 0.5}}))
    assert runs.committed_result(path, ours)["scores"] == {"sync": 0.5}
    assert runs.committed_result(path, theirs) is None  # trained from other towers
    assert runs.towers_tag_for(ours, recipe_towers=True, committed_folder=folder) == ""
    # recipe towers that are not those the committed runs of these settings came from get tagged folders, as do
    # other towers (--towers) always: they never overwrite the committed runs
    (folder / "none-seed0.json").write_text(json.dumps({"towers_fingerprint": theirs}))
    assert runs.towers_tag_for(ours, recipe_towers=True, committed_folder=folder) == "-towersaaaaaaaa"
    assert runs.towers_tag_for("abcdef12" + "0" * 56, recipe_towers=False) == "-towersabcdef12"


def test_run_names_spell_out_every_varied_setting():
    # the first tables' precision and bridges (no space encoding): their folders carry neither
    first = RecipeSettings(bridge_precision="fp32")
    base = replace(first, bridge={**first.bridge, "space_encoding": False})
    assert runs.run_name("dca", 1, first) == runs.run_name("dca", 1, base).replace("-tb2/", "-tb2-se/")
    name = runs.run_name("dca", 1, base)
    assert name == (
        f"ablation-{base.bridge_steps}-lr{base.bridge_lr:g}-{base.bridge_timesteps}"
        f"-tb{base.bridge['time_bias']:g}/dca-seed1"
    )
    paper = replace(
        base, bridge_steps=150, bridge_lr=5e-4, bridge_timesteps="coupled", bridge={**base.bridge, "time_bias": 0.0}
    )
    assert runs.run_name("dca (shared caption)", 0, paper) == "ablation-150-lr0.0005-coupled/dca_shared_caption-seed0"
    smaller_batch = replace(base, bridge_steps=600, bridge_batch_size=8)
    assert runs.run_name("none", 2, smaller_batch) == "ablation-600-lr0.005-independent-tb2-batch8/none-seed2"
    in_bf16 = replace(smaller_batch, bridge_precision="bf16")  # never mixed with the float32 runs
    assert runs.run_name("none", 2, in_bf16) == "ablation-600-lr0.005-independent-tb2-batch8-bf16/none-seed2"
    assert (
        runs.run_name("none", 2, replace(RecipeSettings(), bridge_steps=600, bridge_batch_size=8))
        == "ablation-600-lr0.005-independent-tb2-se-batch8-bf16/none-seed2"
    )  # named by precision, not by the default


def test_the_recipes_own_bridge_stage_is_reused(tmp_path):
    settings = RecipeSettings()
    assert runs.recipe_run_name(tmp_path, settings) is None  # no recipe has run here
    (tmp_path / "recipe.json").write_text(json.dumps(settings.to_dict(), indent=2))
    dca_seed0 = runs.variant_settings(settings, "dca", 0)
    assert runs.recipe_run_name(tmp_path, dca_seed0) == "bridges"
    older = {k: v for k, v in settings.to_dict().items() if k != "bridge_batch_size"}  # a recipe run before it existed
    (tmp_path / "recipe.json").write_text(json.dumps(older, indent=2))
    assert runs.recipe_run_name(tmp_path, dca_seed0) == "bridges"
    assert runs.recipe_run_name(tmp_path, replace(dca_seed0, bridge_batch_size=8)) is None
    first_demo = {k: v for k, v in settings.to_dict().items() if k not in ("world", "video_codec")}
    (tmp_path / "recipe.json").write_text(json.dumps(first_demo, indent=2))  # made before the world was a setting
    assert runs.recipe_run_name(tmp_path, dca_seed0) is None  # its world was the first demo's, not today's
    (tmp_path / "recipe.json").write_text(json.dumps(older, indent=2))
    for other in (
        runs.variant_settings(settings, "none", 0),
        runs.variant_settings(settings, "dca", 1),
        runs.variant_settings(settings, "dca (shared caption)", 0),
        replace(dca_seed0, bridge_steps=150),
        replace(dca_seed0, bridge_precision="fp32"),
    ):
        assert runs.recipe_run_name(tmp_path, other) is None


def test_a_stored_result_names_what_it_still_lacks_and_runs_to_train_go_first(tmp_path):
    settings = RecipeSettings()
    committed_runs = tmp_path / "committed"
    assert runs.stored_result(tmp_path, settings, "dca", 1, fingerprint="f" * 64, commit_to=committed_runs) is None
    committed = committed_runs / f"{runs.run_name('dca', 1, settings)}.json"
    committed.parent.mkdir(parents=True)
    committed.write_text(json.dumps({"towers_fingerprint": "e" * 64}))  # from other towers: not finished here
    assert runs.stored_result(tmp_path, settings, "dca", 1, fingerprint="f" * 64, commit_to=committed_runs) is None
    local = tmp_path / "runs" / runs.run_name("dca", 1, settings) / "scores.json"
    local.parent.mkdir(parents=True)
    local.write_text(json.dumps({"scores": {}, "cross_modal_gain": {}, "next_to_real": {}}))
    stored = runs.stored_result(tmp_path, settings, "dca", 1, fingerprint="f" * 64, commit_to=None)
    assert stored is not None
    # scored before the joint protocols and the unguided next-to-real one existed: only those are missing (runs with
    # coupled noise levels have no next-to-real protocols)
    run_settings = runs.variant_settings(settings, "dca", 1)
    coupled = replace(run_settings, bridge_timesteps="coupled")
    joint = ["both_generated", "both_generated_wa2", "both_generated_unguided"]
    assert runs.missing_measurements(stored, run_settings, runs.PROTOCOLS) == [*joint, "next_to_real_unguided"]
    assert runs.missing_measurements(stored, coupled, runs.PROTOCOLS) == joint
    assert runs.missing_measurements({"scores": {}}, coupled, runs.PROTOCOLS) == ["cross_modal_gain", *joint]
    # by default neither the paper's nor the unguided joint protocol is asked for
    assert runs.missing_measurements(stored, run_settings) == ["both_generated_wa2", "next_to_real_unguided"]
    # w_a = 2 scored for its sync alone, before SCORES were measured on its samples: still missing, until they are
    sync_only = {**stored, "both_generated_wa2": {}, "next_to_real_unguided": {}}
    assert runs.missing_measurements(sync_only, run_settings) == ["both_generated_wa2"]
    assert runs.missing_measurements({**sync_only, "scores_protocol": "both_generated_wa2"}, run_settings) == []

    pending = [("none", 0), ("dca", 0), ("v2a", 0), ("none", 1), ("dca", 1)]
    trained = {("dca", 0): {"scores": {}}}  # only a measurement is missing
    assert runs.longest_first(pending, trained) == [("v2a", 0), ("dca", 1), ("none", 0), ("none", 1), ("dca", 0)]
    share = [("none", 0), ("dca (shared caption)", 2), ("full_attention", 1)]
    assert runs.parse_runs(runs.format_runs(share)) == share
    with pytest.raises(SystemExit, match="not VARIANT@SEED"):
        runs.parse_runs("dcaa@0")


def event_result(variant: str, seed: int, *protocol_syncs: tuple, chance: float = 0.1) -> dict:
    """A run's result with, for each (runs.SyncProtocol, per-clip syncs) pair, those syncs next to a chance level of
    CHANCE for every clip, and the scores the ablation records from them."""
    result = {"variant": variant, "seed": seed, "scores": dict.fromkeys(ablation.SCORES + runs.GAINS, 0.0)}
    for protocol, sync in protocol_syncs:
        result[protocol.result_key] = {
            protocol.direction: {
                "sync_per_clip": list(sync),
                "sync_chance_per_clip": [chance] * len(sync),
                "sync": float(np.mean(sync)),
                "sync_above_chance": float(np.mean(sync)) - chance,
            }
        }
        ablation.record_scores(result, protocol)
    return result


def test_the_table_pairs_each_seed_with_the_same_seed_of_the_baseline():
    """Per variant and protocol: mean and std over seeds, and the lead over "none" from the runs of equal seeds, clip by
    clip, whatever order the runs come in; a protocol some run lacks has neither columns nor lead."""
    guided, unguided = runs.REAL_PROTOCOLS
    joint = runs.PAPER_JOINT_PROTOCOL
    default_joint = (0.3, 0.3, 0.3)
    none = [
        event_result("none", 0, (guided, [0.1, 0.2, 0.1]), (unguided, [0.1, 0.1, 0.1]), (joint, default_joint)),
        event_result("none", 1, (guided, [0.3, 0.3, 0.2]), (unguided, [0.2, 0.1, 0.2]), (joint, default_joint)),
    ]
    dca = [  # out of seed order
        event_result("dca", 1, (guided, [0.5, 0.6, 0.4]), (unguided, [0.7, 0.8, 0.6]), (joint, [0.2, 0.5, 0.3])),
        event_result("dca", 0, (guided, [0.2, 0.4, 0.3]), (unguided, [0.5, 0.5, 0.6]), (joint, [0.3, 0.4, 0.4])),
    ]
    table = runs.aggregate([dca[0], none[1], none[0], dca[1]])

    assert table["dca"]["seeds"] == [0, 1]
    row = table["dca"]["audio_for_real_video_sync"]
    assert row["per_seed"] == pytest.approx([0.3, 0.5]) and row["mean"] == pytest.approx(0.4)
    assert row["std"] == pytest.approx(0.1)
    assert table["dca"]["audio_for_real_video_unguided_sync"]["per_seed"] == pytest.approx([16 / 30, 0.7])
    assert table["dca"]["both_generated_sync_above_chance"]["per_seed"] == pytest.approx([11 / 30 - 0.1, 1 / 3 - 0.1])
    leads = table["dca"]["lead over none"]
    assert set(leads) == {joint.label, guided.label, unguided.label}
    assert leads[joint.label]["mean"] == pytest.approx(np.mean([0.0, 0.1, 0.1, -0.1, 0.2, 0.0]))
    expected = paired_lead(
        [dca[1][guided.result_key], dca[0][guided.result_key]],
        [none[0][guided.result_key], none[1][guided.result_key]],
        guided.direction,
    )
    assert leads[guided.label] == expected
    assert expected["mean"] == pytest.approx(np.mean([0.1, 0.2, 0.2, 0.2, 0.3, 0.2]))
    assert leads[unguided.label]["mean"] == pytest.approx(np.mean([0.4, 0.4, 0.5, 0.5, 0.7, 0.4]))
    assert "lead over none" not in table["none"]
    older = {k: v for k, v in dca[0].items() if k != unguided.result_key}
    older["scores"] = {k: v for k, v in older["scores"].items() if k not in unguided.score_names()}
    partial = runs.aggregate([older, dca[1], *none])["dca"]
    assert "audio_for_real_video_sync" in partial and "audio_for_real_video_unguided_sync" not in partial
    assert set(partial["lead over none"]) == {joint.label, guided.label}


def test_the_table_has_dcas_lead_over_every_other_variant_on_the_seeds_both_have():
    """Table 9's ordering and Table 3's captions compare DCA with each other kind: DCA's run of seed k against the
    other kind's run of seed k, clip by clip, on the seeds both have."""
    joint = runs.PAPER_JOINT_PROTOCOL

    def run(variant, seed, sync):
        return event_result(variant, seed, (joint, sync))

    dca = [run("dca", 0, [0.5, 0.4, 0.6]), run("dca", 1, [0.3, 0.3, 0.4]), run("dca", 2, [0.9, 0.9, 0.9])]
    none = [run("none", 0, [0.2, 0.2, 0.3]), run("none", 1, [0.3, 0.1, 0.2]), run("none", 2, [0.1, 0.2, 0.1])]
    v2a = [run("v2a", 1, [0.4, 0.1, 0.2])]  # only seed 1: DCA's seed 1 against it, nothing else
    shared = [run(runs.SHARED, 2, [0.1, 0.1, 0.1]), run(runs.SHARED, 0, [0.6, 0.6, 0.6])]
    table = runs.aggregate([*dca, *none, *v2a, *shared])

    lead_name = runs.PROPOSED_LEAD
    assert lead_name not in table["dca"]
    v2a_lead = table["v2a"][lead_name][joint.label]
    assert v2a_lead == paired_lead([dca[1][joint.result_key]], [v2a[0][joint.result_key]], joint.direction)
    assert v2a_lead["pairs"] == 3 and v2a_lead["mean"] == pytest.approx(np.mean([-0.1, 0.2, 0.2]))
    shared_lead = table[runs.SHARED][lead_name][joint.label]
    assert shared_lead["pairs"] == 6  # seeds 0 and 2
    assert shared_lead["mean"] == pytest.approx(np.mean([-0.1, -0.2, 0.0, 0.8, 0.8, 0.8]))
    assert table["none"][lead_name][joint.label] == table["dca"]["lead over none"][joint.label]
    assert lead_name not in runs.aggregate([dca[0], run("a2v", 5, [0.2, 0.2, 0.2])])["a2v"]  # no seed in common


def test_the_table_never_averages_scores_measured_on_different_samples(caplog):
    """Runs whose SCORES come from different protocols' samples leave SCORES out of the table; the sync protocols all
    runs have stay."""

    def run(seed, scored_on=None):
        result = event_result("dca", seed, (runs.SCORES_PROTOCOL, [0.5]))
        result["scores"].update(dict.fromkeys(ablation.SCORES + runs.GAINS, 0.5))
        return result if scored_on is None else {**result, "scores_protocol": scored_on}

    same = runs.aggregate([run(0, "both_generated_wa2"), run(1, "both_generated_wa2")])["dca"]
    assert "av_align" in same and "both_generated_wa2_sync" in same
    legacy = {**run(0), "per_clip": []}  # scored before: its SCORES are the paper's samples'
    assert runs.scores_protocol(legacy) == "both_generated" and runs.scores_protocol(run(0)) is None
    trained_only = {"variant": "dca", "seed": 2, "scores": {}}  # kept after training, not yet scored
    with caplog.at_level("WARNING"):
        partial = runs.aggregate([run(0, "both_generated_wa2"), trained_only])["dca"]
    assert "different samples" not in caplog.text and "av_align" not in partial  # not every run has it yet
    with caplog.at_level("WARNING"):
        mixed = runs.aggregate([legacy, run(1, "both_generated_wa2")])["dca"]
    assert not set(ablation.SCORES) & set(mixed) and "both_generated_wa2_sync" in mixed and "audio_gain_pct" in mixed
    assert "different samples" in caplog.text


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """ablation.run_variant with training and scoring replaced by fakes that record their calls in `calls`: a run of
    `run(variant, seed, protocols)` from the recipe's default settings in tmp_path."""
    calls = []

    def train_bridges(out, dataset, towers, run_settings, *, name, cache):
        calls.append(("train", name))
        checkpoint = checkpoint_folder(out / "runs" / name, run_settings.bridge_steps)
        checkpoint.mkdir(parents=True)
        return checkpoint

    def score_model(pipe, records, *, captions, seed, **overrides):
        assert (captions, seed) == ("hvgc", ablation.HELD_OUT_SEED)
        calls.append(("joint", overrides["audio_guidance"]))
        return [dict.fromkeys(ablation.SCORES, 0.5)], {"sync": 0.5, "sync_above_chance": 0.1}

    def score_next_to_real(pipe, dataset, records, *, captions, seed, directions, **overrides):
        assert (captions, seed, directions) == ("hvgc", ablation.HELD_OUT_SEED, (runs.REAL_DIRECTION,))
        calls.append(("real", overrides["audio_guidance"]))
        return {runs.REAL_DIRECTION: {"sync": 0.4, "sync_above_chance": 0.2}}

    def cross_modal_gain_on_cache(*args, **kwargs):
        calls.append(("gain",))
        return {stream: {"mean_relative_gain": 0.1} for stream in ("audio", "video")}

    monkeypatch.setattr(ablation.recipe, "train_bridges", train_bridges)
    monkeypatch.setattr(ablation, "score_model", score_model)
    monkeypatch.setattr(ablation, "score_next_to_real", score_next_to_real)
    monkeypatch.setattr(ablation, "cross_modal_gain_on_cache", cross_modal_gain_on_cache)
    monkeypatch.setattr(ablation.BridgeDiTPipeline, "from_pretrained", lambda path: None)

    def run(variant="dca", seed=0, protocols=runs.DEFAULT_PROTOCOLS, commit_to=None):
        return ablation.run_variant(
            tmp_path,
            tmp_path / "dataset",
            tmp_path / "towers",
            RecipeSettings(),
            variant,
            seed,
            [],
            fingerprint="f" * 64,
            commit_to=commit_to,
            protocols=protocols,
        )

    run.calls = calls
    return run


def test_a_run_is_trained_once_and_measured_only_for_what_it_lacks(tmp_path, fake_run):
    """By default a new run is scored two ways (both streams generated at the demo model's w_a = 2, where its SCORES
    are measured; audio for the real video at w_a = 1); asked again with every protocol, it gets the other three and
    nothing else; asked once more, nothing. Every result is written to RECIPE/runs and the committed copy."""
    settings = RecipeSettings()
    name = runs.run_name("dca", 0, settings)
    assert runs.DEFAULT_PROTOCOLS == tuple(
        p for p in runs.PROTOCOLS if p.result_key in ("both_generated_wa2", "next_to_real_unguided")
    )
    result = fake_run(commit_to=tmp_path / "committed")
    assert fake_run.calls == [("train", name), ("joint", 2.0), ("real", 1.0), ("gain",)]
    assert not runs.missing_measurements(result, runs.variant_settings(settings, "dca", 0))
    assert {"both_generated", "both_generated_unguided", "next_to_real"}.isdisjoint(result)
    assert result["scores_protocol"] == "both_generated_wa2" and result["scores"]["av_align"] == 0.5
    fake_run.calls.clear()
    result = fake_run(protocols=runs.PROTOCOLS, commit_to=tmp_path / "committed")
    assert fake_run.calls == [("joint", 7.0), ("joint", 1.0), ("real", 7.0)]
    assert result["scores"]["audio_for_real_video_sync"] == 0.4
    assert result["scores"]["audio_gain_pct"] == pytest.approx(10.0)  # measured once, with the first scoring
    assert runs.PAPER_AUDIO_GUIDANCE == 7.0 and runs.DEMO_AUDIO_GUIDANCE == 2.0
    for written in (tmp_path / "runs" / name / "scores.json", tmp_path / "committed" / f"{name}.json"):
        assert json.loads(written.read_text()) == result
    fake_run.calls.clear()
    fake_run(protocols=runs.PROTOCOLS)
    assert fake_run.calls == []


def test_a_run_interrupted_while_scored_keeps_its_training_and_what_was_measured(tmp_path, fake_run, monkeypatch):
    settings = RecipeSettings()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    real_scoring = ablation.score_next_to_real
    monkeypatch.setattr(ablation, "score_next_to_real", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fake_run("none", 0)
    kept = runs.stored_result(tmp_path, settings, "none", 0, fingerprint="f" * 64, commit_to=None)
    assert "train_seconds" in kept and kept["scores"]["sync"] == 0.5 and "next_to_real_unguided" not in kept
    monkeypatch.setattr(ablation, "score_next_to_real", real_scoring)
    result = fake_run("none", 0)
    assert fake_run.calls == [("train", runs.run_name("none", 0, settings)), ("joint", 2.0), ("real", 1.0), ("gain",)]
    assert result["train_seconds"] == kept["train_seconds"]
    assert result["scores"]["audio_for_real_video_unguided_sync"] == 0.4


def test_a_committed_run_whose_model_is_not_here_is_tabulated_as_it_is(tmp_path, fake_run, caplog):
    """A result committed from another machine (towers reproduced bit for bit) that lacks a later measurement is used
    as it is, with a warning naming what it lacks: its trained model is not here to measure, and it is not retrained."""
    name = runs.run_name("none", 1, RecipeSettings())
    committed = {"variant": "none", "seed": 1, "scores": {"sync": 0.3}, "towers_fingerprint": "f" * 64}
    for key in ("cross_modal_gain", "next_to_real", "next_to_real_unguided", "both_generated"):
        committed[key] = {}
    (tmp_path / "committed" / name).parent.mkdir(parents=True)
    (tmp_path / "committed" / f"{name}.json").write_text(json.dumps(committed))
    with caplog.at_level("WARNING"):
        result = fake_run("none", 1, commit_to=tmp_path / "committed")
    assert result == committed and fake_run.calls == []
    assert "lacks both_generated_wa2, but" in caplog.text and "not here" in caplog.text


def test_every_tower_set_of_lead_across_towers_is_committed():
    """The standing result across tower sets reads committed runs only: each set the script names is there, with
    paired none/DCA seeds."""
    joint = lead_across_towers.PROTOCOLS[0]
    for tower_set in lead_across_towers.TOWER_SETS:
        tower_runs = lead_across_towers.load_runs(lead_across_towers.RUNS / tower_set.folder)
        assert lead_across_towers.per_seed_leads(tower_runs, joint.result_key, joint.direction), tower_set
