"""One prompt made into two captions, against a local OpenAI-compatible server (127.0.0.1) that the tests script."""

import json

import pytest
from test_captioning import FakeServer

from bridgedit import tiny
from bridgedit.captioning.clean import CaptionError
from bridgedit.captioning.client import Endpoint
from bridgedit.captioning.rewrite import REWRITE_VERSION, RewriteFailed, Rewriter, parse_rewrite
from bridgedit.cli.main import main
from bridgedit.generation import read_clip_record

GOOD = {
    "audio_labels": ["Ball"],
    "video_caption": "A red ball bounces on a beige floor.",
    "audio_caption": "A dull rubber thud.",
}


def _user_text(request) -> str:
    return request["messages"][-1]["content"]


@pytest.fixture
def server():
    servers = []

    def start(respond=None):
        servers.append(FakeServer(respond or (lambda request, count: (200, json.dumps(GOOD)))))
        return servers[-1]

    yield start
    for running in servers:
        running.close()


@pytest.mark.parametrize(
    "answer",
    [json.dumps(GOOD), "```json\n" + json.dumps(GOOD) + "\n```", "Here you are: " + json.dumps(GOOD)],
)
def test_answers_are_parsed(answer):
    captions = parse_rewrite(answer)
    assert (captions.video, captions.audio) == (GOOD["video_caption"], GOOD["audio_caption"])


@pytest.mark.parametrize(
    "answer", [None, "", "a ball and a thud", '{"video_caption": "x"}', '{"video_caption": "x", "audio_caption": " "}']
)
def test_unusable_answers_are_refused(answer):
    with pytest.raises(CaptionError):
        parse_rewrite(answer)


def test_the_rewrite_prompt_is_sent_and_the_cache_used(server, tmp_path):
    fake = server()
    cache = tmp_path / "rewrites.jsonl"
    rewriter = Rewriter(Endpoint(fake.url, "llm"), cache=cache)
    captions = rewriter.rewrite(["a dog barks by a pool", "a dog barks by a pool"])
    assert [c.video for c in captions] == [GOOD["video_caption"]] * 2
    assert len(fake.requests) == 1  # one request per distinct prompt
    text = _user_text(fake.requests[0])
    assert "User's idea: a dog barks by a pool" in text and "Audio labels" in text and '"video_caption"' in text
    again = Rewriter(Endpoint(fake.url, "llm"), cache=cache).rewrite(["a dog barks by a pool"])
    assert again[0].audio == GOOD["audio_caption"] and len(fake.requests) == 1  # from the cache file
    Rewriter(Endpoint(fake.url, "another-llm"), cache=cache).rewrite(["a dog barks by a pool"])
    assert len(fake.requests) == 2  # cached per prompt and model
    assert json.loads(cache.read_text().splitlines()[0])["version"] == REWRITE_VERSION


def test_malformed_answers_are_retried_then_reported(server):
    fake = server(lambda request, count: (200, "not json") if count < 2 else (200, json.dumps(GOOD)))
    assert Rewriter(Endpoint(fake.url, "llm")).rewrite(["a bell"])[0].video == GOOD["video_caption"]
    assert len(fake.requests) == 2
    broken = server(lambda request, count: (200, '{"video_caption": "only this"}'))
    with pytest.raises(RewriteFailed, match="after 3 attempts: the answer lacks"):
        Rewriter(Endpoint(broken.url, "llm")).rewrite(["a bell"])
    assert len(broken.requests) == 3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("rewrite") / "model"
    tiny.bridgedit_pipeline().save_pretrained(path)
    return path


@pytest.mark.slow
def test_generate_rewrites_one_prompt_into_two_captions(server, model_dir, tmp_path, capsys):
    fake = server()
    out = tmp_path / "dog.mp4"
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--prompt",
                "a dog barks by a pool",
                "--out",
                str(out),
                "--steps",
                "2",
                "--rewrite-url",
                fake.url,
                "--rewrite-model",
                "llm",
                "--rewrite-cache",
                str(tmp_path / "cache.jsonl"),
                "--json",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert (record["prompt"], record["video_prompt"], record["audio_prompt"]) == (
        "a dog barks by a pool",
        GOOD["video_caption"],
        GOOD["audio_caption"],
    )
    made = read_clip_record(out)
    assert made["rewritten_from"] == "a dog barks by a pool" and made["video_prompt"] == GOOD["video_caption"]


@pytest.mark.slow
def test_without_a_server_one_caption_serves_both_towers_with_a_warning(model_dir, tmp_path, caplog):
    args = ["generate", "--model", str(model_dir), "--prompt", "a dog barks", "--out", str(tmp_path / "a.mp4")]
    assert main([*args, "--steps", "2"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("one caption for both towers" in w and "Table 3" in w and "--rewrite-url" in w for w in warnings)


@pytest.mark.slow
def test_caption_rewrite_is_resumable_and_stops_when_the_server_is_down(server, tmp_path, capsys):
    fake = server()
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "dog", "prompt": "a dog barks"}\n{"id": "bell", "prompt": "a bell rings"}\n')
    out = tmp_path / "captions.jsonl"
    args = ["caption", "--rewrite", str(prompts), "--out", str(out), "--llm-url", fake.url, "--llm-model", "llm"]
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["dog", "bell"] and rows[0]["video_prompt"] == GOOD["video_caption"]
    assert main(args) == 0 and len(fake.requests) == 2  # nothing asked again
    assert "0 rewritten, 0 failed, 2 skipped" in capsys.readouterr().out
    prompts.write_text(prompts.read_text() + '{"id": "rain", "prompt": "soft rain"}\n')
    down = [
        "caption",
        "--rewrite",
        str(prompts),
        "--out",
        str(out),
        "--llm-url",
        "http://127.0.0.1:9/v1",
        "--retries",
        "0",
    ]
    assert main(down) == 2
    err = capsys.readouterr().err
    assert "cannot reach the rewrite server" in err and "the rest left for the next run" in err
