"""The whole chain through the command line: make data, caption it (HVGC, local server), cache, train, generate
from the checkpoint, evaluate the generated videos."""

import json

import pytest
from test_captioning import FakeServer

from bridgedit import tiny
from bridgedit.cli.main import main
from bridgedit.data.manifest import load_manifest

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out


def test_make_caption_cache_train_generate_evaluate(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["synthetic", "make", "--out", "world", "--clips", "6", "--seed", "5", "--test-clips", "2"]) == 0
    server = FakeServer()
    try:
        assert (
            main(
                ["caption", "world", "--out", "world/captions.jsonl", "--vlm-url", server.url, "--llm-url", server.url]
            )
            == 0
        )
    finally:
        server.close()
    records = load_manifest("world")
    assert all(r["captions"]["video"].startswith("A red rubber ball") for r in records)  # HVGC replaced the world's

    tiny.bridgedit_pipeline().save_pretrained("base")
    assert main(["cache", "world", "--model", "base", "--max-sequence-length", "32"]) == 0
    (tmp_path / "train.yaml").write_text(
        json.dumps(
            {
                "model": {"base": "base"},
                "data": {"dataset": "world", "max_sequence_length": 32},
                "optim": {"lr": 1e-3, "warmup_steps": 1},
                "train": {"steps": 4, "batch_size": 2, "mixed_precision": "no", "gradient_checkpointing": False},
                "checkpoint": {"dir": "run", "every": 4},
            }
        )
    )  # JSON is YAML
    assert main(["train", "--config", "train.yaml"]) == 0
    capsys.readouterr()

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": r["id"], "video_prompt": r["captions"]["video"], "audio_prompt": r["captions"]["audio"]})
            + "\n"
            for r in records
            if r["split"] == "test"
        )
    )
    assert (
        main(
            [
                "generate",
                "--prompts",
                str(prompts),
                "--out-dir",
                "videos",
                "--model",
                "run/checkpoint-000004",
                "--frames",
                "17",
                "--steps",
                "3",
            ]
        )
        == 0
    )
    assert main(["evaluate", "--generated", "videos", "--reference", "world/clips", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 2 and 0 <= result["av_align"] <= 1
    assert result["unpaired"]["generated_only"] == [] and len(result["unpaired"]["reference_only"]) == 4
