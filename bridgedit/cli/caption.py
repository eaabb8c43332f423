"""`bridgedit caption`: HVGC captions for a prepared dataset, from OpenAI-compatible servers."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..captioning.client import Endpoint
from ..captioning.run import MODES, CaptionSettings, caption_dataset
from ..config import ConfigError

# the paper's models (§3.2); any model a server offers works
DEFAULT_VLM, DEFAULT_LLM = "Qwen/Qwen2.5-VL-72B-Instruct", "Qwen/Qwen2.5-72B-Instruct"


def add_parser(subparsers) -> None:
    defaults = CaptionSettings()
    parser = subparsers.add_parser(
        "caption",
        help="HVGC: a video caption T_V and an audio caption T_A per clip, from LLM servers (resumable)",
        description="Caption a prepared dataset the HVGC way (§3.2): a vision-language model writes T_V from the "
        "clip's frames (Figure 5), an LLM abstracts sound labels from T_V (Figure 6) and writes T_A from T_V and "
        "the labels (Figure 7). Any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp). Finished clips "
        "are appended to --out at once; re-running resumes; captions are merged into the dataset's manifest. "
        "The API key is read from the environment variable named by --api-key-env.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "dataset", nargs="?", metavar="DATASET_OR_MANIFEST", help="a prepared dataset folder or its manifest.jsonl"
    )
    parser.add_argument(
        "--rewrite",
        metavar="PROMPTS.jsonl",
        help='instead of a dataset: lines {"id", "prompt"}, each made into a video and an audio caption by the LLM '
        "(--llm-url, --llm-model) and appended to --out as it finishes; re-running resumes",
    )
    parser.add_argument("--out", required=True, metavar="captions.jsonl")
    parser.add_argument("--mode", choices=MODES, default=defaults.mode)
    parser.add_argument(
        "--vlm-url", help="base URL of the vision-language model's server, e.g. http://localhost:8000/v1"
    )
    parser.add_argument("--vlm-model", default=DEFAULT_VLM)
    parser.add_argument("--llm-url", help="base URL of the LLM's server (stages 2 and 3)")
    parser.add_argument("--llm-model", default=DEFAULT_LLM)
    parser.add_argument("--audio-llm-url", help="mode audio-llm: the audio-language model's server")
    parser.add_argument("--audio-llm-model", default="Qwen/Qwen2-Audio-7B-Instruct")
    parser.add_argument("--omni-url", help="mode omni: the omni model's server")
    parser.add_argument("--omni-model", default="Qwen/Qwen2.5-Omni-7B")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    parser.add_argument("--frames", type=int, default=defaults.frames, help="frames shown to the vision model")
    parser.add_argument(
        "--video-input",
        choices=("frames", "video"),
        default=defaults.video_input,
        help="send sampled frames as images, or the video file (servers that accept video)",
    )
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="requests in flight at most")
    parser.add_argument("--attempts", type=int, default=defaults.attempts, help="tries per stage for unusable answers")
    parser.add_argument("--retries", type=int, default=4, help="HTTP retries (429, 5xx, connection) with backoff")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--force", action="store_true", help="re-do captions made with another prompt version or mode")
    parser.add_argument("--no-merge", action="store_true", help="do not write the captions into the manifest")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (args.dataset is None) == (args.rewrite is None):
        raise ConfigError("give a dataset to caption, or --rewrite PROMPTS.jsonl")
    if args.rewrite:
        return run_rewrite(args)
    settings = CaptionSettings(
        mode=args.mode,
        frames=args.frames,
        video_input=args.video_input,
        concurrency=args.concurrency,
        attempts=args.attempts,
        force=args.force,
    )
    endpoints = {}
    for name, url, model in (
        ("vlm", args.vlm_url, args.vlm_model),
        ("llm", args.llm_url, args.llm_model),
        ("audio_llm", args.audio_llm_url, args.audio_llm_model),
        ("omni", args.omni_url, args.omni_model),
    ):
        if url:
            endpoints[name] = Endpoint(url=url, model=model, api_key_env=args.api_key_env)
    if not endpoints:
        raise ConfigError("no server given: pass --vlm-url and --llm-url (or the URLs your --mode needs)")
    report = caption_dataset(
        args.dataset, args.out, settings, endpoints, timeout=args.timeout, retries=args.retries, merge=not args.no_merge
    )
    print(report)
    for clip_id, reason in list(report.failures.items())[:10]:
        print(f"  failed {clip_id}: {reason}")
    return 0 if report.failed == 0 else 1


def run_rewrite(args: argparse.Namespace) -> int:
    """Each prompt line made into two captions, appended to --out as it finishes (resumable: done ids are skipped)."""
    from ..captioning.rewrite import REWRITE_VERSION, RewriteFailed, Rewriter
    from ..generation import ID_PATTERN
    from ..jsonl import append_jsonl, read_jsonl

    if not args.llm_url:
        raise ConfigError("--rewrite needs --llm-url (an OpenAI-compatible server)")
    lines = read_jsonl(args.rewrite) if Path(args.rewrite).is_file() else None
    if lines is None:
        raise FileNotFoundError(f"prompt file {args.rewrite} does not exist")
    for number, line in enumerate(lines, start=1):
        if not (
            isinstance(line.get("id"), str) and ID_PATTERN.match(line["id"]) and isinstance(line.get("prompt"), str)
        ):
            raise ConfigError(f'{args.rewrite}:{number}: each line needs a file-name-safe "id" and a "prompt"')
    done = {record["id"] for record in read_jsonl(args.out)} if Path(args.out).is_file() else set()
    rewriter = Rewriter(
        Endpoint(url=args.llm_url, model=args.llm_model, api_key_env=args.api_key_env),
        attempts=args.attempts,
        timeout=args.timeout,
        retries=args.retries,
    )
    written = failed = 0
    for line in lines:
        if line["id"] in done:
            continue
        try:
            captions = rewriter.rewrite([line["prompt"]])[0]
        except RewriteFailed as error:
            if "cannot reach" in str(error):  # the server is down: every other prompt would fail the same way
                raise ConfigError(f"{error}; {written} written, the rest left for the next run") from None
            print(f"  failed {line['id']}: {error}")
            failed += 1
            continue
        append_jsonl(
            args.out,
            {
                **line,
                "video_prompt": captions.video,
                "audio_prompt": captions.audio,
                "model": args.llm_model,
                "version": REWRITE_VERSION,
            },
        )
        written += 1
    print(f"{written} rewritten, {failed} failed, {len(done)} skipped (already done): {args.out}")
    return 0 if failed == 0 else 1
