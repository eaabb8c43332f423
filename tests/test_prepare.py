"""`bridgedit prepare`: sources of every layout -> standard clips, manifest, rejects, splits, resume."""

import json

import pytest
from test_media_reading import make_source

from bridgedit.cli.main import main
from bridgedit.data.manifest import load_manifest
from bridgedit.data.prepare import prepare_dataset
from bridgedit.data.sources import read_sources
from bridgedit.jsonl import read_jsonl
from bridgedit.media import ClipStandard, read_frames, read_wav

STANDARD = ClipStandard(seconds=1.0, fps=15, height=32, width=48, sample_rate=16_000)
CLI_STANDARD = ["--seconds", "1", "--fps", "15", "--height", "32", "--width", "48", "--sample-rate", "16000"]


@pytest.fixture
def source_folder(tmp_path):
    folder = tmp_path / "src"
    (folder / "drums").mkdir(parents=True)
    make_source(folder / "drums" / "a.mp4", seconds=2.0)
    make_source(folder / "b.mkv", seconds=1.5, click_at=0.5)
    make_source(folder / "mute.mp4", seconds=2.0, audio=False)
    (folder / "corrupt.mp4").write_bytes(b"garbage" * 200)
    make_source(folder / "short.mov", seconds=0.4, click_at=0.1)
    return folder


def test_folder_to_clips_with_rejects_and_reasons(source_folder, tmp_path, capsys):
    out = tmp_path / "dataset"
    assert main(["prepare", str(source_folder), "--out", str(out), *CLI_STANDARD, "--min-seconds", "0.5"]) == 0
    assert "2 clips written, 3 rejected" in capsys.readouterr().out
    records = load_manifest(out)
    assert sorted(r["id"] for r in records) == ["b", "drums__a"]
    rejects = {r["id"]: r["reason"] for r in read_jsonl(out / "rejects.jsonl")}
    assert rejects["mute"] == "no audio stream"
    assert rejects["corrupt"].startswith("cannot decode")
    assert rejects["short"].startswith("too short")
    for record in records:
        frames = read_frames(out / record["path"])
        audio, rate = read_wav(out / record["audio_path"])
        assert frames.shape == (15, 32, 48, 3) and audio.shape == (1, 16_000) and rate == 16_000
        assert record["split"] == "train" and record["duration"] == 1.0
    padded = next(r for r in records if r["id"] == "b")
    assert padded["padded_seconds"] == 0 and 0 <= padded["start"] <= 0.5


def test_resume_skips_finished_work(source_folder, tmp_path, capsys):
    out = tmp_path / "dataset"
    args = ["prepare", str(source_folder), "--out", str(out), *CLI_STANDARD]
    main(args)
    capsys.readouterr()
    before = (out / "manifest.jsonl").read_text()
    assert main(args) == 0
    assert "0 clips written, 0 rejected, 5 already done" in capsys.readouterr().out
    assert (out / "manifest.jsonl").read_text() == before
    assert main(args[:-2] + ["--sample-rate", "8000"]) == 2  # other settings into the same folder
    assert "other settings" in capsys.readouterr().err


def test_interrupted_run_resumes(source_folder, tmp_path, monkeypatch):
    import bridgedit.data.prepare as prepare

    out = tmp_path / "dataset"
    layout, entries = read_sources(source_folder)
    real, calls = prepare.write_sounding_video, []

    def dies_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "write_sounding_video", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(entries, out, STANDARD, progress=False)
    monkeypatch.setattr(prepare, "write_sounding_video", real)
    assert len(read_jsonl(out / "manifest.jsonl")) == 1
    report = prepare_dataset(entries, out, STANDARD, progress=False)
    assert report.accepted == 1 and report.skipped >= 1
    assert len(load_manifest(out)) == 2


def test_manifest_source_with_segments_captions_and_a_seeded_test_set(tmp_path):
    make_source(tmp_path / "long.mp4", seconds=3.0)
    make_source(tmp_path / "other.mp4", seconds=2.0)
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        "path,start,end,video_caption,audio_caption,split\n"
        "long.mp4,0.5,2.0,a drummer hits a drum,a sharp drum hit,\n"
        "long.mp4,1.5,3.0,,,\n"
        "other.mp4,,,a quiet room,,test\n"
    )
    layout, entries = read_sources(manifest)
    assert layout == "manifest" and [e.id for e in entries] == ["long_500ms", "long_1500ms", "other"]
    prepare_dataset(entries, tmp_path / "ds", STANDARD, seed=3, test_size=1, progress=False)
    records = {r["id"]: r for r in load_manifest(tmp_path / "ds")}
    assert records["long_500ms"]["captions"] == {"video": "a drummer hits a drum", "audio": "a sharp drum hit"}
    assert 0.5 <= records["long_500ms"]["start"] <= 1.0 and records["long_500ms"]["source_end"] == 2.0
    assert records["other"]["split"] == "test"  # given split kept
    assert sorted(r["split"] for k, r in records.items() if k != "other") == ["test", "train"]  # one drawn


def test_bad_manifest_rows_are_named(tmp_path, capsys):
    manifest = tmp_path / "list.jsonl"
    manifest.write_text('{"path": "a.mp4", "start": "soon"}\n')
    assert main(["prepare", str(manifest), "--out", str(tmp_path / "ds")]) == 2
    assert f"{manifest}:1:" in capsys.readouterr().err


def test_av_filter_hook(source_folder, tmp_path):
    import sys
    import types

    module = types.ModuleType("loudness_filter")
    seen = []
    module.score = lambda frames, audio, rate: seen.append((frames.shape, audio.shape, rate)) or 0.25
    sys.modules["loudness_filter"] = module
    out = tmp_path / "ds"
    assert (
        main(
            [
                "prepare",
                str(source_folder),
                "--out",
                str(out),
                *CLI_STANDARD,
                "--min-seconds",
                "0.5",
                "--av-filter",
                "loudness_filter:score",
            ]
        )
        == 0
    )  # the paper's threshold, 0.3
    reasons = [r["reason"] for r in read_jsonl(out / "rejects.jsonl")]
    assert sum(r == "audio-visual filter score 0.250 is not above 0.3" for r in reasons) == 2
    assert seen == [((15, 32, 48, 3), (16_000,), 16_000)] * 2
    assert not (out / "manifest.jsonl").exists() or load_manifest(out) == []


@pytest.mark.parametrize("layout", ["avsync15", "landscape", "vggsound-ss"])
def test_dataset_layouts(tmp_path, layout):
    root = tmp_path / layout
    if layout == "avsync15":
        for split, name in (("train", "hammer/h1.mp4"), ("test", "dog/d1.mp4")):
            (root / "videos" / name).parent.mkdir(parents=True, exist_ok=True)
            make_source(root / "videos" / name, seconds=1.2)
            (root / f"{split}.txt").write_text(name + "\n")
        expected = {"hammer__h1": ("train", "hammer"), "dog__d1": ("test", "dog")}
    elif layout == "landscape":
        for split, name in (("train", "thunder/t1.mp4"), ("test", "fire/f1.mp4")):
            (root / split / name).parent.mkdir(parents=True, exist_ok=True)
            make_source(root / split / name, seconds=1.2)
        expected = {"train__thunder__t1": ("train", "thunder"), "test__fire__f1": ("test", "fire")}
    else:
        (root / "video").mkdir(parents=True)
        make_source(root / "video" / "abc_000010.mp4", seconds=1.2)
        (root / "vggss.json").write_text(
            json.dumps([{"file": "abc_000010", "class": "dog barking"}, {"file": "gone_000000", "class": "cat"}])
        )
        expected = {"abc_000010": ("train", "dog barking")}
    detected, entries = read_sources(root)
    assert detected == layout
    prepare_dataset(entries, tmp_path / "ds", STANDARD, progress=False)
    records = {r["id"]: (r["split"], r["label"]) for r in load_manifest(tmp_path / "ds")}
    assert records == expected
    if layout == "vggsound-ss":
        assert [r["reason"] for r in read_jsonl(tmp_path / "ds" / "rejects.jsonl")] == ["file not found"]
