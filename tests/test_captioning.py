"""HVGC captioning against a real OpenAI-compatible HTTP server on 127.0.0.1, started by the tests."""

import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from bridgedit.captioning import prompts
from bridgedit.captioning.clean import CaptionError, clean_caption, parse_labels
from bridgedit.captioning.client import Endpoint
from bridgedit.captioning.run import CaptionSettings, caption_dataset
from bridgedit.cli.main import main
from bridgedit.data.manifest import load_manifest
from bridgedit.jsonl import read_jsonl
from bridgedit.synthetic import make_dataset

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "000_673e738bf004f056.txt"
T_V = "A red rubber ball bounces up and down on a wooden floor."


def _text(request) -> str:
    content = request["messages"][-1]["content"]
    return content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")


def stage_of(request) -> str:
    text = _text(request)
    if text == prompts.STAGE1_VIDEO_CAPTION:
        return "stage1"
    if text.startswith(prompts.STAGE2_AUDIO_LABELS.split("{video_caption}")[0]):
        return "stage2"
    if "Audio Labels: [" in text.split("YOUR TASK")[-1]:
        return "stage3"
    if text.startswith(prompts.NO_STAGE2_AUDIO_CAPTION.split("{video_caption}")[0]):
        return "no_stage2"
    return {prompts.AUDIO_LLM_CAPTION: "audio_llm", prompts.OMNI_CAPTION: "omni"}.get(text, "unknown")


def good_answer(request) -> str:
    return {
        "stage1": f'**Video Caption:** "{T_V}"',
        "stage2": "Audio Labels: Ball bounce, Floor",
        "stage3": "Audio Caption: A dull, rubbery thud repeats against hollow wood.",
        "no_stage2": "A dull thud.",
        "audio_llm": "Thuds.",
        "omni": "A red ball bounces with dull thuds.",
    }[stage_of(request)]


class FakeServer:
    """A chat-completions endpoint whose answers a test scripts; it records every request and the concurrency."""

    def __init__(self, respond=None, delay: float = 0.0):
        self.respond = respond or (lambda request, count: (200, good_answer(request)))
        self.delay, self.requests, self.lock = delay, [], threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.authorization = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    count = len(server.requests)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.authorization.add(self.headers.get("Authorization"))
                try:
                    time.sleep(server.delay)
                    status, answer = server.respond(body, count)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                if isinstance(answer, bytes):
                    payload = answer
                else:
                    payload = json.dumps(
                        {
                            "id": f"c{count}",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": answer},
                                }
                            ],
                        }
                        if status == 200
                        else {"error": {"message": answer}}
                    ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("retry-after-ms", "1")  # keep the client's backoff short in tests
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stages(self):
        return [stage_of(r) for r in self.requests]

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "dataset", clips=3, seed=0)


@pytest.fixture
def server():
    servers = []

    def start(**kwargs):
        servers.append(FakeServer(**kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _endpoints(url):
    return {
        "vlm": Endpoint(url, "vlm-model"),
        "llm": Endpoint(url, "llm-model"),
        "audio_llm": Endpoint(url, "audio-model"),
        "omni": Endpoint(url, "omni-model"),
    }


def _run(dataset, out, url, **settings):
    return caption_dataset(dataset, out, CaptionSettings(**settings), _endpoints(url), retries=3, progress=False)


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper's text is not beside the checkout")
def test_prompts_are_the_papers_verbatim():
    lines = [
        line
        for line in PAPER.read_text(encoding="utf-8").split("\n")
        if line.strip() and not re.fullmatch(r"\s*\d+\s*", line)
    ]

    def figure(title, caption):
        return "\n".join(lines[lines.index(title) + 1 : lines.index(caption)])

    assert prompts.STAGE1_VIDEO_CAPTION == figure(
        "Instruction for Stage1: Detailed Visual Scene Description",
        "Figure 5: Prompts for Stage1: Detailed Visual Scene Description",
    )
    assert prompts.STAGE2_AUDIO_LABELS == figure(
        "Instruction for: Stage2: Auditory Concept Abstraction",
        "Figure 6: Prompts for Stage2: Auditory Concept Abstraction",
    )
    assert prompts.STAGE3_AUDIO_CAPTION == figure(
        "Instruction for Stage3: Visually-Grounded Audio Caption Generation",
        "Figure 7: Prompts for Stage3: Visually-Grounded Audio Caption Generation",
    )


def test_three_stages_arrive_verbatim_with_substitutions(dataset, tmp_path, server):
    fake = server()
    report = _run(dataset, tmp_path / "captions.jsonl", fake.url, frames=4, concurrency=2)
    assert (report.done, report.failed) == (3, 0)
    assert sorted(fake.stages()) == ["stage1"] * 3 + ["stage2"] * 3 + ["stage3"] * 3
    for request in fake.requests:
        stage = stage_of(request)
        text = _text(request)
        if stage == "stage1":
            assert request["model"] == "vlm-model"
            images = [p for p in request["messages"][0]["content"] if p["type"] == "image_url"]
            assert len(images) == 4
            for image in images:
                header, data = image["image_url"]["url"].split(",", 1)
                assert header == "data:image/jpeg;base64"
                assert Image.open(io.BytesIO(base64.b64decode(data))).size == (64, 64)
        elif stage == "stage2":
            assert request["model"] == "llm-model" and text == prompts.render_stage2(T_V)
            assert text.endswith(f"Input Caption: {T_V}\nAudio Labels:")
        else:
            assert text == prompts.render_stage3(T_V, ["Ball bounce", "Floor"])
            assert f'Video Caption: {T_V}\nAudio Labels: ["Ball bounce", "Floor"]\nAudio Caption:' in text
    records = read_jsonl(tmp_path / "captions.jsonl")
    assert all(r["video_caption"] == T_V and r["audio_labels"] == ["Ball bounce", "Floor"] for r in records)
    assert all(r["audio_caption"] == "A dull, rubbery thud repeats against hollow wood." for r in records)
    assert all(
        r["prompt_version"] == prompts.PROMPT_VERSION and set(r["seconds"]) == {"stage1", "stage2", "stage3"}
        for r in records
    )
    assert records[0]["raw"]["stage1"] == f'**Video Caption:** "{T_V}"'
    manifest = load_manifest(dataset)  # merged for cache and train
    assert all(r["captions"]["video"] == T_V and r["captions"]["audio"].startswith("A dull") for r in manifest)


def test_server_errors_are_retried(dataset, tmp_path, server):
    fake = server(respond=lambda request, count: (500, "overloaded") if count == 1 else (200, good_answer(request)))
    report = _run(dataset, tmp_path / "c.jsonl", fake.url, concurrency=1)
    assert report.done == 3 and len(fake.requests) == 10  # one 500, retried, then 9 good answers


def test_empty_and_malformed_answers(dataset, tmp_path, server):
    def respond(request, count):
        stage = stage_of(request)
        if stage == "stage1" and count == 1:
            return 200, "   "  # empty once: asked again
        return 200, good_answer(request)

    fake = server(respond=respond)
    assert _run(dataset, tmp_path / "a.jsonl", fake.url, concurrency=1).done == 3
    assert fake.stages().count("stage1") == 4

    always_bad = server(
        respond=lambda request, count: (
            (200, b"this is not json") if stage_of(request) == "stage2" else (200, good_answer(request))
        )
    )
    report = _run(dataset, tmp_path / "b.jsonl", always_bad.url, concurrency=1, attempts=2)
    assert (report.done, report.failed) == (0, 3)  # every clip recorded as failed; the batch went on
    failed = read_jsonl(tmp_path / "b.jsonl")
    assert all(
        r["status"] == "failed" and r["error"].startswith("stage2:") and "after 2 attempts" in r["error"]
        for r in failed
    )

    empty = server(
        respond=lambda request, count: (200, "") if stage_of(request) == "stage3" else (200, good_answer(request))
    )
    report = _run(dataset, tmp_path / "c.jsonl", empty.url, concurrency=1, attempts=2)
    assert report.failed == 3 and all("stage3: empty answer" in r["error"] for r in read_jsonl(tmp_path / "c.jsonl"))


def test_concurrency_is_bounded(tmp_path, server):
    dataset = make_dataset(tmp_path / "six", clips=6, seed=2)
    fake = server(delay=0.15)
    _run(dataset, tmp_path / "c.jsonl", fake.url, concurrency=2)
    assert fake.max_in_flight == 2


def test_resume_after_a_kill_does_not_repeat_finished_clips(tmp_path, server):
    dataset = make_dataset(tmp_path / "five", clips=5, seed=3)
    fake = server(delay=0.1)
    out = tmp_path / "captions.jsonl"
    command = [
        sys.executable,
        "-m",
        "bridgedit.cli.main",
        "caption",
        str(dataset),
        "--out",
        str(out),
        "--vlm-url",
        fake.url,
        "--llm-url",
        fake.url,
        "--concurrency",
        "1",
    ]
    process = subprocess.Popen(
        command, env=dict(os.environ, HF_HUB_OFFLINE="1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(read_jsonl(out)) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {r["id"] for r in read_jsonl(out)}
    assert 2 <= len(finished) < 5
    before = len(fake.requests)
    assert main(["caption", str(dataset), "--out", str(out), "--vlm-url", fake.url, "--llm-url", fake.url]) == 0
    again = fake.requests[before:]
    assert len([r for r in again if stage_of(r) == "stage1"]) == 5 - len(finished)
    assert {r["id"] for r in read_jsonl(out) if r["status"] == "done"} == {f"clip{i:05d}" for i in range(5)}


def test_prompt_version_changes_are_redone_only_with_force(dataset, tmp_path, server):
    fake = server()
    out = tmp_path / "c.jsonl"
    _run(dataset, out, fake.url)
    records = read_jsonl(out)
    out.write_text("".join(json.dumps({**r, "prompt_version": "hvgc-0"}) + "\n" for r in records))
    count = len(fake.requests)
    assert _run(dataset, out, fake.url).skipped == 3 and len(fake.requests) == count
    assert _run(dataset, out, fake.url, force=True).done == 3 and len(fake.requests) == count + 9


def test_other_modes(dataset, tmp_path, server):
    fake = server()
    _run(dataset, tmp_path / "shared.jsonl", fake.url, mode="shared")
    assert set(fake.stages()) == {"stage1"}
    assert all(r["captions"]["shared"] == T_V for r in load_manifest(dataset))

    _run(dataset, tmp_path / "no2.jsonl", fake.url, mode="hvgc-no-stage2")
    assert "stage2" not in fake.stages() and fake.stages().count("no_stage2") == 3
    assert "Audio Labels" not in prompts.render_no_stage2(T_V).split("YOUR TASK")[-1]

    _run(dataset, tmp_path / "audio.jsonl", fake.url, mode="audio-llm")
    audio_requests = [r for r in fake.requests if stage_of(r) == "audio_llm"]
    part = next(p for p in audio_requests[0]["messages"][0]["content"] if p["type"] == "input_audio")
    assert part["input_audio"]["format"] == "wav" and base64.b64decode(part["input_audio"]["data"])[:4] == b"RIFF"
    assert audio_requests[0]["model"] == "audio-model"

    _run(dataset, tmp_path / "omni.jsonl", fake.url, mode="omni")
    omni = [r for r in fake.requests if stage_of(r) == "omni"]
    kinds = {p["type"] for p in omni[0]["messages"][0]["content"]}
    assert kinds == {"image_url", "input_audio", "text"} and len(omni) == 3
    assert all(r["captions"]["shared"] == "A red ball bounces with dull thuds." for r in load_manifest(dataset))


def test_api_key_comes_from_the_environment_and_is_not_printed(dataset, tmp_path, server, monkeypatch, capsys, caplog):
    fake = server()
    monkeypatch.setenv("MY_CAPTION_KEY", "sk-secret-123")
    assert (
        main(
            [
                "caption",
                str(dataset),
                "--out",
                str(tmp_path / "c.jsonl"),
                "--vlm-url",
                fake.url,
                "--llm-url",
                fake.url,
                "--api-key-env",
                "MY_CAPTION_KEY",
            ]
        )
        == 0
    )
    assert fake.authorization == {"Bearer sk-secret-123"}
    captured = capsys.readouterr()
    assert "sk-secret" not in captured.out + captured.err + caplog.text
    assert "sk-secret" not in (tmp_path / "c.jsonl").read_text()
    assert "3 captioned, 0 failed, 0 skipped" in captured.out


def test_missing_servers_are_named(dataset, tmp_path, capsys):
    assert (
        main(["caption", str(dataset), "--out", str(tmp_path / "c.jsonl"), "--vlm-url", "http://127.0.0.1:9/v1"]) == 2
    )
    assert "mode hvgc needs --llm-url/--llm-model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "answer, expected",
    [
        ('Audio Caption: "A dog barks loudly."', "A dog barks loudly."),
        ("**Audio Caption:** A dog barks loudly.", "A dog barks loudly."),
        ("* Audio Caption: A dog barks\nloudly.", "A dog barks loudly."),
        ("```\nA dog barks loudly.\n```", "A dog barks loudly."),
        ("“A dog barks loudly.”", "A dog barks loudly."),
        ("Caption: A *loud* dog barks.", "A loud dog barks."),
    ],
)
def test_clean_caption(answer, expected):
    assert clean_caption(answer) == expected


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Hammer, Sparks", ["Hammer", "Sparks"]),
        ("Audio Labels: Hammer, Sparks.", ["Hammer", "Sparks"]),
        ('["Strong Wind", "Dog Bark"]', ["Strong Wind", "Dog Bark"]),
        ("Labels: ['wind', 'dog bark', 'wind']", ["wind", "dog bark"]),
        ("- Hammer\n- Sparks\n- hammer", ["Hammer", "Sparks"]),
    ],
)
def test_parse_labels(answer, expected):
    assert parse_labels(answer) == expected


@pytest.mark.parametrize("answer", ["", "   ", None, '""', "Audio Caption:"])
def test_empty_answers_are_failures(answer):
    with pytest.raises(CaptionError):
        clean_caption(answer)


def test_a_run_stops_early_when_its_server_cannot_be_reached(tmp_path, capsys):
    """No server on the port: after UNREACHABLE_IN_A_ROW clips fail for want of a connection, the rest are left for
    the next run (not each tried with its whole retry budget), and the report says how many."""
    from bridgedit.captioning.run import UNREACHABLE_IN_A_ROW

    dataset = make_dataset(tmp_path / "eight", clips=8, seed=4)
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    argv = ["caption", str(dataset), "--out", str(tmp_path / "c.jsonl"), "--vlm-url", closed, "--llm-url", closed]
    assert main([*argv, "--retries", "0", "--concurrency", "1"]) == 1
    out = capsys.readouterr().out
    left = 8 - UNREACHABLE_IN_A_ROW
    assert f"0 captioned, {UNREACHABLE_IN_A_ROW} failed" in out and f"{left} clips left for the next run" in out
    assert "is unreachable" in out
    records = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(records) == UNREACHABLE_IN_A_ROW and all(r["status"] == "failed" for r in records)
