"""Captioning a dataset: the HVGC stages per clip, many clips at once, every finished clip appended at once.

Modes (Table 3's caption ablation):
- hvgc: T_V from a vision-language model watching the clip (Figure 5); audio labels from an LLM reading T_V
  (Figure 6); T_A from an LLM reading T_V and the labels (Figure 7).
- hvgc-no-stage2: T_V as above; T_A from an LLM reading T_V alone (no labels).
- shared: T_V as above, used for both towers (T_A = T_V).
- audio-llm: T_V as above; T_A from an audio-language model listening to the clip's audio (e.g. Qwen2-Audio).
- omni: one caption from an omni model that watches and listens (e.g. Qwen2.5-Omni), used for both towers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..config import ConfigError
from ..data.manifest import MANIFEST_NAME, clip_files, load_manifest
from ..jsonl import append_jsonl, read_jsonl, write_jsonl
from . import prompts
from .clean import CaptionError, clean_caption, parse_labels
from .client import ChatClient, Endpoint
from .inputs import audio_part, image_parts, user_message, video_part

logger = logging.getLogger(__name__)

MODES = ("hvgc", "hvgc-no-stage2", "shared", "audio-llm", "omni")
NEEDS = {
    "hvgc": ("vlm", "llm"),
    "hvgc-no-stage2": ("vlm", "llm"),
    "shared": ("vlm",),
    "audio-llm": ("vlm", "audio_llm"),
    "omni": ("omni",),
}


@dataclass(frozen=True)
class CaptionSettings:
    mode: str = "hvgc"
    frames: int = 8  # frames shown to the vision-language model, evenly spread
    video_input: str = "frames"  # "frames" (images) or "video" (the file, for servers that take video)
    concurrency: int = 4  # requests in flight at most
    attempts: int = 3  # per stage, for unusable answers or errors left after the client's own retries
    force: bool = False  # re-do captions made with another prompt version or mode

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.video_input not in ("frames", "video"):
            raise ConfigError("video_input must be 'frames' or 'video'")
        if self.frames < 1 or self.concurrency < 1 or self.attempts < 1:
            raise ConfigError("frames, concurrency and attempts must be positive")


@dataclass
class CaptionReport:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None  # why the run stopped early (a server out of reach), None when it ran through
    left: int = 0  # clips not tried because it stopped

    def __str__(self) -> str:
        text = f"{self.done} captioned, {self.failed} failed, {self.skipped} skipped (already done)"
        if self.stopped:
            text += (
                f"; stopped after {UNREACHABLE_IN_A_ROW} clips in a row could not reach their server, {self.left} "
                "clips left for the next run"
            )
        return text


class StageFailed(RuntimeError):
    pass


class ServerUnreachable(StageFailed):
    """No connection to a server after the client's own retries: every clip after it would fail the same way."""


#: clips failed in a row for want of a connection after which a run stops, leaving the rest for the next run
UNREACHABLE_IN_A_ROW = 3


def captions_for_manifest(record: dict[str, Any]) -> dict[str, str]:
    """A finished caption record -> the manifest's caption keys (video, audio, shared)."""
    mode = record["mode"]
    if mode == "omni":
        return {"shared": record["video_caption"]}
    if mode == "shared":
        return {"video": record["video_caption"], "shared": record["video_caption"]}
    return {"video": record["video_caption"], "audio": record["audio_caption"]}


class Captioner:
    def __init__(self, dataset: Path, settings: CaptionSettings, clients: dict[str, ChatClient]) -> None:
        missing = [name for name in NEEDS[settings.mode] if name not in clients]
        if missing:
            flags = {
                "vlm": "--vlm-url/--vlm-model",
                "llm": "--llm-url/--llm-model",
                "audio_llm": "--audio-llm-url/--audio-llm-model",
                "omni": "--omni-url/--omni-model",
            }
            raise ConfigError(f"mode {settings.mode} needs {', '.join(flags[m] for m in missing)}")
        self.dataset, self.settings, self.clients = dataset, settings, clients
        self.semaphore = asyncio.Semaphore(settings.concurrency)

    async def _ask(
        self,
        client_name: str,
        messages: list[dict],
        parse: Callable[[str | None], Any],
        stage: str,
        trace: dict[str, Any],
    ) -> Any:
        import openai

        last_error = "no attempt"
        for _ in range(self.settings.attempts):
            try:
                async with self.semaphore:
                    text, seconds = await self.clients[client_name].complete(messages)
                trace["raw"][stage] = text
                trace["seconds"][stage] = round(trace["seconds"].get(stage, 0.0) + seconds, 3)
                return parse(text)
            except CaptionError as error:
                last_error = str(error)
            except openai.APIConnectionError as error:  # the client has retried already: no server to talk to
                url = self.clients[client_name].endpoint.url
                raise ServerUnreachable(
                    f"{stage}: the {client_name} server at {url} is unreachable ({error})"
                ) from None
            except (openai.OpenAIError, ValueError) as error:  # left after the client's retries, or malformed
                last_error = f"{type(error).__name__}: {error}"
        raise StageFailed(f"{stage}: {last_error} (after {self.settings.attempts} attempts)")

    def _visual(self, video: Path) -> list[dict]:
        return [video_part(video)] if self.settings.video_input == "video" else image_parts(video, self.settings.frames)

    async def caption(self, record: dict[str, Any]) -> dict[str, Any]:
        mode = self.settings.mode
        video, audio = clip_files(self.dataset, record)
        trace: dict[str, Any] = {"raw": {}, "seconds": {}}
        result: dict[str, Any] = {
            "id": record["id"],
            "mode": mode,
            "prompt_version": prompts.PROMPT_VERSION,
            "models": {name: self.clients[name].endpoint.describe() for name in NEEDS[mode]},
        }
        try:
            if mode == "omni":
                media = await asyncio.to_thread(lambda: self._visual(video) + [audio_part(audio)])
                result["video_caption"] = await self._ask(
                    "omni", user_message(prompts.OMNI_CAPTION, media), clean_caption, "omni", trace
                )
            else:
                media = await asyncio.to_thread(self._visual, video)
                t_v = await self._ask(
                    "vlm", user_message(prompts.STAGE1_VIDEO_CAPTION, media), clean_caption, "stage1", trace
                )
                result["video_caption"] = t_v
                if mode == "hvgc":
                    labels = await self._ask(
                        "llm", user_message(prompts.render_stage2(t_v)), parse_labels, "stage2", trace
                    )
                    result["audio_labels"] = labels
                    result["audio_caption"] = await self._ask(
                        "llm", user_message(prompts.render_stage3(t_v, labels)), clean_caption, "stage3", trace
                    )
                elif mode == "hvgc-no-stage2":
                    result["audio_caption"] = await self._ask(
                        "llm", user_message(prompts.render_no_stage2(t_v)), clean_caption, "stage3", trace
                    )
                elif mode == "shared":
                    result["audio_caption"] = t_v
                else:  # audio-llm
                    result["audio_caption"] = await self._ask(
                        "audio_llm",
                        user_message(prompts.AUDIO_LLM_CAPTION, [audio_part(audio)]),
                        clean_caption,
                        "audio_llm",
                        trace,
                    )
            result["status"] = "done"
        except (StageFailed, OSError, ValueError) as error:
            result["status"], result["error"] = "failed", str(error)
            result["unreachable"] = isinstance(error, ServerUnreachable)
        return {**result, **trace}


def latest_records(path: Path) -> dict[str, dict[str, Any]]:
    """The newest record per clip id (later lines win)."""
    return {record["id"]: record for record in read_jsonl(path)}


def is_finished(record: dict[str, Any] | None, settings: CaptionSettings) -> bool:
    if record is None or record.get("status") != "done":
        return False
    current = record.get("prompt_version") == prompts.PROMPT_VERSION and record.get("mode") == settings.mode
    return current or not settings.force


async def _run(captioner: Captioner, todo: list[dict], out: Path, report: CaptionReport, progress: bool) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for record in todo:
        queue.put_nowait(record)
    bar = tqdm(total=len(todo), desc=f"caption ({captioner.settings.mode})", disable=not progress)
    unreachable_in_a_row = 0

    async def worker() -> None:
        nonlocal unreachable_in_a_row
        while not queue.empty():
            record = queue.get_nowait()
            result = await captioner.caption(record)
            unreachable = result.pop("unreachable", False)
            append_jsonl(out, result)  # one whole line per finished clip: a kill loses nothing finished
            unreachable_in_a_row = unreachable_in_a_row + 1 if unreachable else 0
            if unreachable_in_a_row >= UNREACHABLE_IN_A_ROW and not report.stopped:
                report.stopped = result["error"]
                while not queue.empty():  # fail fast: the rest waits for the next run
                    queue.get_nowait()
                    report.left += 1
            if result["status"] == "done":
                report.done += 1
            else:
                report.failed += 1
                report.failures[result["id"]] = result["error"]
                logger.warning("%s failed: %s", result["id"], result["error"])
            bar.update(1)

    try:
        await asyncio.gather(*(worker() for _ in range(min(captioner.settings.concurrency, max(1, len(todo))))))
    finally:
        bar.close()
        for client in captioner.clients.values():
            await client.close()


def caption_dataset(
    dataset: str | Path,
    out: str | Path,
    settings: CaptionSettings,
    endpoints: dict[str, Endpoint],
    *,
    timeout: float = 300.0,
    retries: int = 4,
    merge: bool = True,
    progress: bool = True,
) -> CaptionReport:
    """Caption every clip of a prepared dataset not captioned yet; merge the finished captions into its manifest."""
    dataset, out = Path(dataset), Path(out)
    if dataset.name == MANIFEST_NAME:
        dataset = dataset.parent
    records = load_manifest(dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = latest_records(out)
    todo = [r for r in records if not is_finished(existing.get(r["id"]), settings)]
    report = CaptionReport(skipped=len(records) - len(todo))
    stale = [
        i
        for i, r in existing.items()
        if r.get("status") == "done" and r.get("prompt_version") != prompts.PROMPT_VERSION
    ]
    if stale and not settings.force:
        logger.warning("%d captions were made with another prompt version; kept (use --force to redo them)", len(stale))
    clients = {
        name: ChatClient(endpoint, timeout=timeout, max_retries=retries)
        for name, endpoint in endpoints.items()
        if name in NEEDS[settings.mode]
    }
    captioner = Captioner(dataset, settings, clients)
    asyncio.run(_run(captioner, todo, out, report, progress))
    if merge:
        merge_captions(dataset, out)
    return report


def merge_captions(dataset: Path, captions: Path) -> int:
    """Write the finished captions into the dataset's manifest (atomically); returns how many clips got captions."""
    finished = {i: r for i, r in latest_records(captions).items() if r.get("status") == "done"}
    records = load_manifest(dataset)
    merged = 0
    for record in records:
        if record["id"] in finished:
            record["captions"] = {**(record.get("captions") or {}), **captions_for_manifest(finished[record["id"]])}
            merged += 1
    write_jsonl(dataset / MANIFEST_NAME, records)
    return merged
