"""The web app's work, apart from its page: one loaded pipeline, requests checked into generation jobs, one job on the
device at a time, cancellation between sampling steps, and each result written with its sync picture and the
`bridgedit generate` command that makes it again. No Gradio here (ui.py draws the page over a Studio)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import generation
from ..config import ConfigError
from ..generation import PromptItem
from ..media import check_given_stream

logger = logging.getLogger(__name__)

#: the three ways in: captions alone; a given video (its sound generated); a given sound (its video generated)
MODES = ("text", "sound_for_video", "video_for_sound")


class JobCancelled(Exception):
    """Raised between sampling steps once the job's cancel button was pressed; nothing of the job is written."""


@dataclass(frozen=True)
class Limits:
    """What the page offers for a model: sizes in multiples of 16 up to twice the model's own, frame counts 4k+1 up to
    twice its own (at least 81), both within what the model's positional tables hold, steps up to 200. Requests
    outside are refused before any work."""

    max_height: int
    max_width: int
    max_frames: int
    max_steps: int = 200

    @classmethod
    def for_settings(cls, settings: generation.GenerationSettings, model_limits: dict[str, int]) -> Limits:
        """Twice the model's own sizes (frames: at least 81), within what its positional tables hold."""

        def frames(count: int) -> int:
            return (count - 1) // 4 * 4 + 1

        return cls(
            max_height=min(2 * settings.height, model_limits["height"]) // 16 * 16,
            max_width=min(2 * settings.width, model_limits["width"]) // 16 * 16,
            max_frames=frames(min(max(2 * settings.num_frames, 81), model_limits["num_frames"])),
        )

    def check(self, explicit: dict[str, Any]) -> None:
        for key, largest, name in (
            ("height", self.max_height, "height"),
            ("width", self.max_width, "width"),
            ("num_frames", self.max_frames, "frame count"),
            ("num_inference_steps", self.max_steps, "step count"),
        ):
            if explicit.get(key) is not None and explicit[key] > largest:
                raise ConfigError(f"{name} {explicit[key]} is above this model's limit here ({largest})")


@dataclass(frozen=True)
class Request:
    """One press of a Generate button. Captions may be empty where the mode does not need them; `video` / `audio`
    are uploaded files' paths; settings left None take the model's own defaults."""

    mode: str
    video_prompt: str = ""
    audio_prompt: str = ""
    video: str | None = None
    audio: str | None = None
    seed: int = 0
    num_inference_steps: int | None = None
    video_guidance: float | None = None
    audio_guidance: float | None = None
    height: int | None = None
    width: int | None = None
    num_frames: int | None = None
    hold: str | None = None

    def explicit_settings(self) -> dict[str, Any]:
        keys = ("num_inference_steps", "video_guidance", "audio_guidance", "height", "width", "num_frames", "hold")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}


@dataclass(frozen=True)
class Result:
    """A finished clip: its files, its sync picture's figures and how to make it again."""

    video: str
    wav: str
    picture: str
    command: str
    av_align: float
    parameters: dict[str, Any] = field(default_factory=dict)

    def caption(self) -> str:
        """A gallery caption: the mode, the seed and the generated stream's caption, short."""
        text = self.parameters.get("audio_prompt") or self.parameters.get("video_prompt") or ""
        return f"{self.parameters['mode']} · seed {self.parameters['seed']} · {text[:60]}"


class Studio:
    """The app's pipeline and results folder. `generate` runs one request at a time on the device (others wait for
    the lock, besides Gradio's own queue); `cancel(session)` stops that session's running job at its next step."""

    def __init__(self, pipe, out_dir: str | Path, *, model: str | None = None, rewriter=None) -> None:
        self.pipe = pipe
        self.model = model  # what `--model` the equivalent command names (None: the bundled demo model)
        self.out_dir = generation.check_writable_dir(out_dir)
        self.rewriter = rewriter
        self.defaults = generation.settings_with_model_defaults({}, pipe.generation_defaults)
        self.limits = Limits.for_settings(self.defaults, pipe.model_limits())
        self._device = threading.Lock()
        self._running_session: str | None = None
        self._cancel = threading.Event()

    # ------------------------------------------------------------------ checks
    def prompt_item(self, request: Request) -> PromptItem:
        """The request as a prompt item; ConfigError (a one-line message for the page) for what cannot run."""
        if request.mode not in MODES:
            raise ConfigError(f"unknown mode {request.mode!r}; choose one of {', '.join(MODES)}")
        video_prompt, audio_prompt = request.video_prompt.strip(), request.audio_prompt.strip()
        if request.mode == "text":
            if not video_prompt or not audio_prompt:
                raise ConfigError(
                    "write both captions: the video caption (what is seen) and the audio caption (what is heard)"
                )
            return PromptItem(id="clip", video_prompt=video_prompt, audio_prompt=audio_prompt)
        kind, needed = ("video", "audio caption") if request.mode == "sound_for_video" else ("audio", "video caption")
        path = request.video if kind == "video" else request.audio
        if not path:
            raise ConfigError(f"upload a {'video' if kind == 'video' else 'sound'} file first")
        check_given_stream(path, kind)
        if not (audio_prompt if kind == "video" else video_prompt):
            raise ConfigError(f"write the {needed}: what the generated stream should be")
        return PromptItem(id="clip", video_prompt=video_prompt, audio_prompt=audio_prompt, **{kind: path})

    def settings(self, request: Request) -> generation.GenerationSettings:
        generation.check_seed(request.seed)
        explicit = request.explicit_settings()
        self.limits.check(explicit)
        settings = generation.settings_with_model_defaults(explicit, self.pipe.generation_defaults, write_wav=True)
        settings.check()
        return settings

    def rewrite(self, prompt: str) -> tuple[str, str]:
        """One prompt made into (video caption, audio caption) by the configured LLM server."""
        if self.rewriter is None:
            raise ConfigError("no rewrite server is configured: start the app with --rewrite-url URL")
        if not prompt.strip():
            raise ConfigError("write a prompt to make into two captions")
        captions = self.rewriter.rewrite([prompt.strip()])[0]
        return captions.video, captions.audio

    # ------------------------------------------------------------------ work
    def generate(self, request: Request, session: str = "", on_step=None) -> Result:
        """Check, then generate on the device (waiting for any other job), then draw. `on_step(done, total)` after each
        sampling step. Raises ConfigError/MediaError for bad requests, JobCancelled when cancelled."""
        item = self.prompt_item(request)
        settings = self.settings(request)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}-{request.mode}-seed{request.seed}"
        out_path = self.out_dir / f"{stem}.mp4"

        def step(done: int, total: int) -> None:
            if self._cancel.is_set():
                raise JobCancelled(f"cancelled after {done - 1} of {total} steps")
            if on_step is not None:
                on_step(done, total)

        with self._device:
            self._running_session = session
            self._cancel.clear()
            try:
                record = generation.generate_to_file(
                    self.pipe, item, out_path, settings, request.seed, progress=False, step_callback=step
                )
            finally:
                self._running_session = None
        from ..picture import sync_picture

        picture = out_path.with_suffix(".png")
        figures = sync_picture(out_path, picture)
        command = generation.generate_command(
            item, request.explicit_settings(), request.seed, out=out_path.name, model=self.model, wav=True
        )
        parameters = {**asdict(request), **{k: v for k, v in asdict(settings).items() if k in generation.FLAG_SETTINGS}}
        return Result(
            video=str(out_path),
            wav=record["wav"],
            picture=str(picture),
            command=command,
            av_align=figures["av_align"],
            parameters=parameters,
        )

    def cancel(self, session: str = "") -> bool:
        """Stop `session`'s running job at its next sampling step; False when it has none running."""
        if self._running_session is None or self._running_session != session:
            return False
        self._cancel.set()
        return True
