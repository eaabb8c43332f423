"""The synthetic world: deterministic, in prepare's format, and its event detectors agree with its ground truth."""

import json

import numpy as np
import pytest

from bridgedit.cli.main import main
from bridgedit.data.manifest import load_manifest
from bridgedit.media import read_frames, read_wav
from bridgedit.synthetic import WorldSettings, audio_events, render_clip, sync_score, video_events
from bridgedit.synthetic.world import draw_scene

LONG = WorldSettings(seconds=4 + 1 / 15, max_events=4)


def _clip(index, settings=LONG):
    rng = np.random.default_rng([7, index])
    scene = draw_scene(rng, settings)
    frames, audio = render_clip(scene, settings, rng)
    return scene, frames, audio


def test_detectors_find_the_true_events():
    for index in range(8):
        scene, frames, audio = _clip(index)
        frame = 1 / LONG.fps
        video = video_events(frames, LONG.fps)
        assert len(video) == len(scene.events)
        assert np.max(np.abs(np.array(video) - scene.events)) <= frame  # the frame nearest each impact
        heard = audio_events(audio, LONG.sample_rate)
        assert len(heard) == len(scene.events)
        assert np.max(np.abs(np.array(heard) - scene.events)) < 0.02


def test_sync_score_is_near_one_in_sync_and_near_zero_shifted():
    aligned, shifted = [], []
    for index in range(10):
        _, frames, audio = _clip(index)
        aligned.append(sync_score(frames, LONG.fps, audio, LONG.sample_rate))
        shifted.append(sync_score(frames, LONG.fps, np.roll(audio, int(0.3 * LONG.sample_rate)), LONG.sample_rate))
    assert np.mean(aligned) >= 0.95 and np.mean(shifted) <= 0.1


def test_event_statistics_score_every_pairing_as_sync_score_does():
    from bridgedit.synthetic.scoring import event_statistics

    clips = [(frames, audio, LONG.fps, LONG.sample_rate) for _, frames, audio in (_clip(i) for i in range(4))]
    statistics = event_statistics(clips)
    scenes = [_clip(i)[0] for i in range(4)]
    assert statistics["video_events"] == statistics["audio_events"] == np.mean([len(s.events) for s in scenes])
    assert statistics["sync_per_clip"] == [sync_score(f, fps, a, rate) for f, a, fps, rate in clips]
    pairs = {
        (i, j): sync_score(clips[i][0], LONG.fps, clips[j][1], LONG.sample_rate)
        for i in range(4)
        for j in range(4)
        if i != j
    }
    assert statistics["sync_chance_per_clip"] == pytest.approx(
        [np.mean([pairs[i, j] for j in range(4) if j != i]) for i in range(4)]
    )
    assert statistics["sync_chance"] == pytest.approx(np.mean(list(pairs.values())))
    assert statistics["sync_with_another_clips_audio"] == pytest.approx(
        np.mean([pairs[i, (i + 1) % 4] for i in range(4)])
    )
    assert statistics["sync"] >= 0.95 > statistics["sync_chance"]


def test_silence_and_stillness_have_no_events():
    assert audio_events(np.zeros(4000), 4000) == []
    assert video_events(np.full((10, 64, 64, 3), 90, np.uint8), 15) == []


def test_cli_writes_a_dataset_in_prepares_format(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["synthetic", "make", "--out", str(out), "--clips", "5", "--seed", "3", "--test-clips", "2"]) == 0
    assert "wrote 5 clips" in capsys.readouterr().out
    records = load_manifest(out)
    assert [r["split"] for r in records] == ["train"] * 3 + ["test"] * 2
    record = records[0]
    assert set(record["captions"]) == {"video", "audio", "shared"}
    assert (
        record["scene"]["colour"] in record["captions"]["video"]
        and record["scene"]["colour"] not in record["captions"]["audio"]
    )
    assert not any(str(t) in json.dumps(record["captions"]) for t in record["events"])  # timing never in the text
    frames = read_frames(out / record["path"])
    audio, rate = read_wav(out / record["audio_path"])
    assert frames.shape == (17, 64, 64, 3) and rate == 4000 and audio.shape == (1, round(17 / 15 * 4000))
    again = tmp_path / "again"
    main(["synthetic", "make", "--out", str(again), "--clips", "5", "--seed", "3", "--test-clips", "2"])
    assert (again / "manifest.jsonl").read_text() == (out / "manifest.jsonl").read_text()  # deterministic
    assert np.array_equal(read_wav(again / record["audio_path"])[0], audio)


@pytest.mark.parametrize("seed", [0, 1])
def test_captions_separate_what_is_seen_from_what_is_heard(seed):
    scene = draw_scene(np.random.default_rng(seed), WorldSettings())
    captions = scene.captions()
    assert scene.colour in captions["video"] and scene.background in captions["video"]
    assert scene.colour not in captions["audio"] and scene.background not in captions["audio"]


def test_faithfulness_checks_read_the_world_correctly():
    from dataclasses import asdict

    from bridgedit.synthetic.faithfulness import faithfulness

    results = []
    for index in range(24):
        scene, frames, audio = _clip(index, WorldSettings())
        results.append(faithfulness(frames, audio, 4000, asdict(scene)))
    for attribute in ("colour", "shape", "material"):
        assert all(r[attribute] for r in results), attribute


def test_faithfulness_notices_the_wrong_thing():
    from dataclasses import asdict

    from bridgedit.synthetic.faithfulness import faithfulness

    scene, frames, audio = _clip(3, WorldSettings())
    wrong = {
        **asdict(scene),
        "colour": next(c for c in ("red", "blue") if c != scene.colour),
        "shape": "cube" if scene.shape == "ball" else "ball",
        "material": next(m for m in ("rubber", "metal") if m != scene.material),
    }
    assert faithfulness(frames, audio, 4000, wrong) == {"colour": False, "shape": False, "material": False}


def test_smooth_edges_draw_a_round_ball_of_the_scenes_size():
    """Anti-aliased: the ball's edge pixels are blends of its colour and the background's, and the colour it adds
    over a frame is the disc's area, pi r^2 (a hard edge: whole pixels only)."""
    from bridgedit.synthetic.world import BACKGROUNDS, COLOURS, Scene

    scene = Scene("ball", "red", "rubber", "gray", size=0.12, x=0.5, events=(0.5,))
    radius = scene.size * 128
    for smooth in (True, False):
        world = WorldSettings(height=128, width=128, seconds=25 / 12, fps=12.0, max_events=4, smooth_edges=smooth)
        frames, _ = render_clip(scene, world, np.random.default_rng(0))
        sky = frames[0, :100].astype(float)  # the ball in mid-air, above the floor line
        red, gray = np.array(COLOURS["red"], float), np.array(BACKGROUNDS["gray"], float)
        cover = ((sky - gray) @ (red - gray)) / ((red - gray) @ (red - gray))  # 0 background ... 1 ball
        partial = ((cover > 0.02) & (cover < 0.98)).sum()
        assert bool(partial > 2 * radius) is smooth  # a blended rim all round, or none
        assert cover.sum() == pytest.approx(np.pi * radius**2, rel=0.02 if smooth else 0.05)


def test_lamps_flash_and_ambience_is_only_heard():
    from bridgedit.synthetic.detect import flash_times, impact_times
    from bridgedit.synthetic.world import AMBIENCES

    scenes = [_clip(index) for index in range(40)]
    lamps = [(scene, frames) for scene, frames, _ in scenes if scene.shape == "lamp"]
    assert lamps and {s.ambience for s, _, _ in scenes} == set(AMBIENCES)
    for scene, frames in lamps:
        assert impact_times(frames, LONG.fps) == []  # a lamp never touches down
        seen = np.array(flash_times(frames, LONG.fps))
        assert len(seen) == len(scene.events) and np.all((seen >= scene.events) & (seen - scene.events < 1 / LONG.fps))
        assert "flashes" in scene.captions()["video"]
    for scene, _, _ in scenes:
        captions = scene.captions()
        if scene.ambience != "none":
            heard = AMBIENCES[scene.ambience]
            assert heard in captions["audio"] and heard in captions["shared"] and heard not in captions["video"]


def test_picture_marks_the_clips_events(tmp_path, capsys):
    """`bridgedit synthetic picture`: a world clip with sound, drawn; the events it reports are the detectors' on the
    decoded file, and they find the world's true impacts within a frame."""
    from bridgedit.media import read_video, write_sounding_video

    main(["synthetic", "make", "--out", str(tmp_path / "world"), "--clips", "1", "--seed", "5"])
    record = load_manifest(tmp_path / "world")[0]
    audio, rate = read_wav(tmp_path / "world" / record["audio_path"])
    clip = tmp_path / "clip.mp4"
    write_sounding_video(clip, read_frames(tmp_path / "world" / record["path"]), record["fps"], audio, rate)
    capsys.readouterr()
    assert main(["synthetic", "picture", str(clip), "--out", str(tmp_path / "clip.png")]) == 0
    assert (tmp_path / "clip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frames, fps = read_video(clip)
    detected = video_events(frames, fps)
    reported = capsys.readouterr().out.split("video events at ")[1].split(" s;")[0]
    assert reported == (", ".join(f"{t:.2f}" for t in detected) or "none")
    assert record["events"] and all(min(abs(t - d) for d in detected) <= 1 / fps for t in record["events"])


def test_pictures_mark_a_true_clips_events_where_they_happen():
    from dataclasses import replace

    from bridgedit.synthetic.picture import event_marks

    world = WorldSettings()
    scene = replace(draw_scene(np.random.default_rng(3), world), shape="ball", events=(0.2, 0.8))
    frames, audio = render_clip(scene, world, np.random.default_rng(3))

    marks = event_marks(frames, audio, world.fps, world.sample_rate, list(scene.events))

    width = world.width  # at 15 fps an event at 0.2 s is in frame 3, one at 0.8 s in frame 12
    assert marks["filmstrip"]["true"] == [3.5 * width, 12.5 * width]
    assert marks["waveform"]["true"] == [0.2, 0.8]
    # a real clip's detected events are its true events: within one frame on the frames, a few ms in the audio
    assert len(marks["filmstrip"]["detected"]) == 2
    assert np.allclose(marks["filmstrip"]["detected"], marks["filmstrip"]["true"], atol=width)
    assert np.allclose(marks["waveform"]["detected"], [0.2, 0.8], atol=0.01)


@pytest.mark.slow  # renders a dataset
def test_next_to_real_pairs_each_generated_stream_with_its_own_clips_real_one(tmp_path, monkeypatch):
    """A model that returns the real clip itself scores in sync both ways; one that returns the next clip's
    generated stream scores at the chance level (each clip's real stream against every other clip's)."""
    from bridgedit.data.manifest import load_manifest
    from bridgedit.synthetic import make_dataset, scoring
    from bridgedit.synthetic.scoring import real_clips

    dataset = make_dataset(tmp_path / "world", clips=6, test_clips=6, seed=2, seconds=4 + 1 / 15, max_events=4)
    records = load_manifest(dataset, split="test")
    clips = list(real_clips(dataset, records))

    def fake_generate(shift, **expected_call_kwargs):
        def generate_for(pipe, records, *, captions, seed, given, given_latents, **call_kwargs):
            assert captions == "hvgc" and given in ("video", "audio") and given_latents == [given] * len(records)
            assert call_kwargs == expected_call_kwargs  # generation overrides (guidance) reach the pipeline call
            for index, record in enumerate(records):
                frames, audio, rate = clips[(index + shift) % len(records)]
                yield record, frames, audio, record["fps"], rate

        return generate_for

    monkeypatch.setattr(scoring, "real_latents", lambda pipe, dataset, records: (["video"] * 6, ["audio"] * 6))
    monkeypatch.setattr(scoring, "generate_for", fake_generate(0))
    faithful = scoring.score_next_to_real(None, dataset, records)
    monkeypatch.setattr(scoring, "generate_for", fake_generate(1, audio_guidance=1.0))
    shifted = scoring.score_next_to_real(None, dataset, records, audio_guidance=1.0)
    assert set(faithful) == set(shifted) == set(scoring.NEXT_TO_REAL)
    for direction in scoring.NEXT_TO_REAL:
        assert faithful[direction]["sync"] >= 0.9 and faithful[direction]["sync_above_chance"] > 0.5
        assert shifted[direction]["sync"] < 0.3  # another clip's stream
        assert shifted[direction]["sync_above_chance"] < 0  # its chance level now includes the true pairings


def test_next_to_real_pairs_runs_clip_by_clip_against_the_baseline():
    from bridgedit.synthetic.scoring import paired_lead

    direction = "audio for the real video"

    def run(sync, chance):
        return {direction: {"sync_per_clip": sync, "sync_chance_per_clip": chance}}

    baseline = [run([0.2, 0.3, 0.1], [0.2, 0.2, 0.2]), run([0.5, 0.5, 0.5], [0.1, 0.1, 0.1])]
    variant = [run([0.4, 0.4, 0.4], [0.2, 0.2, 0.2]), run([0.6, 0.7, 0.5], [0.1, 0.1, 0.1])]
    lead = paired_lead(variant, baseline, direction)
    differences = [0.2, 0.1, 0.3, 0.1, 0.2, 0.0]  # run i of each, clip by clip
    assert lead["pairs"] == 6 and lead["mean"] == pytest.approx(np.mean(differences))
    assert lead["standard_error"] == pytest.approx(np.std(differences, ddof=1) / np.sqrt(6))
    assert 0 < lead["p_value"] < 0.01
    assert paired_lead(baseline, variant, direction)["p_value"] > 0.99  # one-sided: "greater"
    with pytest.raises(ValueError, match="as many baseline runs"):
        paired_lead(variant, baseline[:1], direction)


def test_a_dataset_made_again_leaves_no_temporary_of_a_killed_run(tmp_path):
    from bridgedit.synthetic import make_dataset

    clips = tmp_path / "world" / "clips"
    clips.mkdir(parents=True)
    (clips / ".clip00000.mp4.ab12cd_3.mp4").write_bytes(b"half a clip")  # what a killed write leaves
    make_dataset(tmp_path / "world", clips=1)
    assert sorted(p.name for p in clips.iterdir()) == ["clip00000.mp4", "clip00000.wav"]


def test_a_models_world_is_the_one_given_or_made_again_from_its_recipe_and_then_removed(tmp_path):
    from bridgedit.synthetic.recipe import RecipeSettings, model_world

    settings = RecipeSettings(train_clips=2, test_clips=1)
    (tmp_path / "recipe.json").write_text(json.dumps(settings.to_dict()))
    with model_world(tmp_path, world=tmp_path / "given") as dataset:
        assert dataset == tmp_path / "given"  # given: used as it is, nothing made
    assert not (tmp_path / "given").exists()
    with model_world(tmp_path) as dataset:
        records = load_manifest(dataset)
        assert len(records) == 3 and records[-1]["split"] == "test"
        assert (records[0]["width"], records[0]["fps"]) == (settings.world["width"], settings.world["fps"])
    assert not dataset.exists()  # the temporary world is gone
