"""Generation jobs: one sounding video, or a resumable batch from a JSONL prompt file split across processes.

A batch writes `<out_dir>/<id>.mp4` (and `.wav` on request) per prompt, atomically, so a file that exists
is finished: re-running skips it. Under `accelerate launch` the remaining prompts are split between the
processes; each item's seed depends only on the item (its own "seed", else base seed + line index), so
the output does not depend on how many processes ran it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import tempfile
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import remove_stale_temporaries
from .config import ClipSpec, CodecStrides, ConfigError, check_clip, check_non_negative_finite, read_text
from .media import write_sounding_video, write_wav, write_with_original_stream

if TYPE_CHECKING:  # torch is imported where it is used, so the CLI can show its help without it
    import torch

logger = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DTYPES = ("float32", "bfloat16", "float16")  # the --dtype names besides auto, each a torch dtype's name
PROMPT_KEYS = {
    "id",
    "video_prompt",
    "audio_prompt",
    "prompt",
    "negative_video_prompt",
    "negative_audio_prompt",
    "seed",
    "video",
    "audio",
}


@dataclass(frozen=True)
class PromptItem:
    id: str
    video_prompt: str | None = None
    audio_prompt: str | None = None
    prompt: str | None = None
    negative_video_prompt: str | None = None
    negative_audio_prompt: str | None = None
    seed: int | None = None
    video: str | None = None  # a file whose video is held while the audio is generated next to it
    audio: str | None = None  # a file whose sound is held while the video is generated next to it
    rewritten_from: str | None = None  # the one prompt an LLM made into video_prompt and audio_prompt

    def prompts(self) -> dict[str, str | None]:
        """The pipeline's prompt arguments; a held stream's own caption may be left out (then empty)."""
        prompts = {k: v for k, v in asdict(self).items() if k not in ("id", "seed", "video", "audio", "rewritten_from")}
        if self.prompt is None:
            for held, key in ((self.video, "video_prompt"), (self.audio, "audio_prompt")):
                if held is not None and prompts[key] is None:
                    prompts[key] = ""
        return prompts

    def given(self) -> dict[str, str]:
        """The held stream's file, as the pipeline's `video` or `audio` argument ({} for text alone)."""
        return {k: v for k, v in (("video", self.video), ("audio", self.audio)) if v is not None}


@dataclass(frozen=True)
class GenerationSettings:
    height: int = 480
    width: int = 832
    num_frames: int = 81
    fps: float = 15.0
    audio_seconds: float | None = None
    num_inference_steps: int = 50
    video_guidance: float = 6.0
    audio_guidance: float = 7.0
    schedule: str = "coupled"
    sampler: str = "euler"
    max_sequence_length: int = 512  # UMT5 tokens of Wan's text states (the release generates with 1,024)
    audio_length_rounding: str = "ceil"  # "floor": the release's 116 audio latent frames at 5.4 s
    negative_video_prompt: str | None = None  # used where a prompt brings none (a converted release model's)
    negative_audio_prompt: str | None = None
    hold: str | None = None  # how a given video or sound is held (None: the model's own, else "clean")
    keep_original: bool = False  # mux a given stream as the file has it (no re-encode), not as the model saw it
    write_wav: bool = False
    offload_text_encoders: bool = False
    step_cache: float | None = None  # first-block caching's threshold (diffusion.step_cache); None: off

    def check(self) -> None:
        """Fail before any model loads: sizes Wan cannot take, non-positive steps."""
        check_clip(
            ClipSpec(
                height=self.height,
                width=self.width,
                num_frames=self.num_frames,
                fps=self.fps,
                audio_seconds=self.audio_seconds,
                audio_length_rounding=self.audio_length_rounding,
            ),
            CodecStrides(),
        )
        if self.num_inference_steps < 1:
            raise ConfigError(f"steps must be a positive integer; got {self.num_inference_steps}")
        for name, value in (("video guidance", self.video_guidance), ("audio guidance", self.audio_guidance)):
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number; got {value}")
        if self.step_cache is not None:
            check_non_negative_finite("the step cache's threshold", self.step_cache)

    def call_kwargs(self) -> dict[str, Any]:
        return dict(
            height=self.height,
            width=self.width,
            num_frames=self.num_frames,
            fps=self.fps,
            audio_seconds=self.audio_seconds,
            num_inference_steps=self.num_inference_steps,
            video_guidance=self.video_guidance,
            audio_guidance=self.audio_guidance,
            schedule=self.schedule,
            sampler=self.sampler,
            offload_text_encoders=self.offload_text_encoders,
            max_sequence_length=self.max_sequence_length,
            audio_length_rounding=self.audio_length_rounding,
            hold=self.hold,
            step_cache=self.step_cache,
        )

    def prompts(self, item: PromptItem) -> dict[str, str | None]:
        """The item's prompts, with the settings' negative prompts where the item has none."""
        prompts = item.prompts()
        for key in ("negative_video_prompt", "negative_audio_prompt"):
            if prompts[key] is None:
                prompts[key] = getattr(self, key)
        return prompts


# ----------------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------------


def parse_prompt_item(data: Any, where: str) -> PromptItem:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    unknown = sorted(set(data) - PROMPT_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(PROMPT_KEYS))}"
        )
    item_id = data.get("id")
    if not isinstance(item_id, str) or not ID_PATTERN.match(item_id):
        raise ConfigError(f'{where}: "id" must be a file-name-safe string (letters, digits, . _ -); got {item_id!r}')
    for key in PROMPT_KEYS - {"id", "seed"}:
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f'{where}: "{key}" must be a string')
    if "video" in data and "audio" in data:
        raise ConfigError(f'{where}: give "video" or "audio" to hold, not both: one stream is generated')
    if "video" in data or "audio" in data:  # the generated stream's caption is needed, the held one's optional
        held = "video" if "video" in data else "audio"
        needed = "audio_prompt" if held == "video" else "video_prompt"
        if "prompt" in data and ("video_prompt" in data or "audio_prompt" in data):
            raise ConfigError(f'{where}: give "{needed}" or one shared "prompt", not both')
        if needed not in data and "prompt" not in data:
            raise ConfigError(f'{where}: a held "{held}" needs "{needed}" (the caption of the stream generated for it)')
        if not Path(data[held]).is_file():
            raise ConfigError(f'{where}: "{held}" file {data[held]} does not exist')
    else:
        has_pair = "video_prompt" in data and "audio_prompt" in data
        if ("prompt" in data) == has_pair or (not has_pair and ("video_prompt" in data or "audio_prompt" in data)):
            raise ConfigError(f'{where}: give either "video_prompt" and "audio_prompt", or one shared "prompt"')
    if data.get("seed") is not None:
        check_seed(data["seed"], name=f'{where}: "seed"')
    return PromptItem(**data)


#: the largest seed a torch.Generator takes (seeds are 0 to 2**64 - 1)
MAX_SEED = 2**64 - 1


def check_seed(seed: Any, *, name: str = "seed") -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer from 0 to 2**64 - 1; got {seed!r}")
    return seed


def read_prompt_file(path: str | os.PathLike) -> list[PromptItem]:
    """One JSON object per line: {"id", "video_prompt", "audio_prompt"} or {"id", "prompt"}, optional seed and negatives."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} does not exist")
    items, seen = [], set()
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        item = parse_prompt_item(data, f"{path}:{number}")
        if item.id in seen:
            raise ConfigError(f"{path}:{number}: id {item.id!r} appears twice")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise ConfigError(f"{path} holds no prompts")
    return items


def resolve_device(name: str | None) -> torch.device:
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} is not available here: PyTorch sees no CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} is not available here: only {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} is not available here")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {name!r}; use cpu, cuda, cuda:N or mps")
    return device


def process_state(device_name: str | None):
    """Accelerate's process state and this process's device: under `accelerate launch` each process gets its own
    GPU; with no GPU (or --device cpu) the processes form a CPU group (gloo)."""
    import torch
    from accelerate import PartialState

    if device_name is not None:
        device = resolve_device(device_name)
        return PartialState(cpu=device.type == "cpu"), device
    state = PartialState(cpu=not torch.cuda.is_available())
    return state, state.device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype {name!r}; choose auto, {', '.join(DTYPES)}")
    return getattr(torch, name)


def check_writable_file(path: str | os.PathLike, suffix: str = ".mp4") -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ConfigError(f"output {path} must end in {suffix}")
    if path.is_dir():
        raise ConfigError(f"output {path} is a directory")
    check_writable_dir(path.parent, create=False)
    return path


def check_writable_dir(path: str | os.PathLike, *, create: bool = True) -> Path:
    path = Path(path)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create output folder {path}: {error.strerror}") from None
    if not path.is_dir():
        raise ConfigError(f"output folder {path} does not exist")
    try:  # a test write: permissions alone do not tell (read-only mounts, /proc, a full disk)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ConfigError(f"output folder {path} is not writable ({error.strerror})") from None
    return path


# ----------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------


#: the comment tag's key: its value is how the clip was made, enough to make it again (`clip_record`)
RECORD_KEY = "bridgedit"
#: the settings `bridgedit generate` sets by flag (each a GenerationSettings field)
FLAG_SETTINGS = (
    "height",
    "width",
    "num_frames",
    "fps",
    "audio_seconds",
    "num_inference_steps",
    "video_guidance",
    "audio_guidance",
    "schedule",
    "sampler",
    "hold",
    "step_cache",
)
#: the settings a clip record keeps: those, and the two only a model's own defaults set
RECORDED_SETTINGS = (*FLAG_SETTINGS, "max_sequence_length", "audio_length_rounding")
#: each FLAG_SETTINGS setting's `bridgedit generate` flag
SETTING_FLAGS = {
    "height": "--height",
    "width": "--width",
    "num_frames": "--frames",
    "fps": "--fps",
    "audio_seconds": "--audio-seconds",
    "num_inference_steps": "--steps",
    "video_guidance": "--video-guidance",
    "audio_guidance": "--audio-guidance",
    "schedule": "--schedule",
    "sampler": "--sampler",
    "hold": "--hold",
    "step_cache": "--step-cache",
}
PROMPT_FLAGS = {
    "video_prompt": "--video-prompt",
    "audio_prompt": "--audio-prompt",
    "prompt": "--prompt",
    "negative_video_prompt": "--negative-video-prompt",
    "negative_audio_prompt": "--negative-audio-prompt",
}


def generate_command(
    item: PromptItem, explicit: dict[str, Any], seed: int, *, out: str, model: str | None = None, wav: bool = False
) -> str:
    """The `bridgedit generate` command line that makes the same clip: the item's prompts and given stream, the
    settings in `explicit` (FLAG_SETTINGS keys; None left out: the model's own default), the seed, the model (None:
    the bundled demo model, the command's default), shell-quoted."""
    words = ["bridgedit", "generate"]
    if model is not None:
        words += ["--model", model]
    for key, flag in PROMPT_FLAGS.items():
        value = getattr(item, key)
        if value:  # a held stream's empty caption is the command's default too
            words += [flag, value]
    for kind, path in item.given().items():
        words += [f"--{kind}", path]
    for key, value in explicit.items():
        if value is not None:
            words += [SETTING_FLAGS[key], repr(value) if isinstance(value, float) else str(value)]  # repr: exact
    words += ["--seed", str(seed), "--out", out]
    if wav:
        words.append("--wav")
    return shlex.join(words)


def rewrite_shared_prompts(items: list[PromptItem], rewriter) -> list[PromptItem]:
    """Items with one shared `prompt` made into a video and an audio caption by `rewriter` (a
    `captioning.rewrite.Rewriter`); without one, a warning that names the paper's finding, and the items unchanged."""
    from dataclasses import replace

    shared = [item for item in items if item.prompt is not None]
    if not shared:
        return items
    if rewriter is None:
        logger.warning(
            "one caption for both towers: the paper's towers read a purely visual and a purely auditory caption, and "
            "one shared caption confuses both (its Table 3); give --rewrite-url URL to have an LLM write the two"
        )
        return items
    captions = dict(zip([item.prompt for item in shared], rewriter.rewrite([item.prompt for item in shared])))
    return [
        replace(
            item,
            prompt=None,
            video_prompt=captions[item.prompt].video,
            audio_prompt=captions[item.prompt].audio,
            rewritten_from=item.prompt,
        )
        if item.prompt is not None
        else item
        for item in items
    ]


def clip_record(pipe, item: PromptItem, settings: GenerationSettings, seed: int) -> dict[str, Any]:
    """How a clip is made: the model (folder or hub id, and a hash of its weights), the prompts as used, the seed, the
    settings, a given stream's file, the dtype and bridgedit's version. Written into the .mp4's comment tag."""
    from . import __version__

    prompts = {k: v for k, v in settings.prompts(item).items() if v is not None}
    return {
        "bridgedit_version": __version__,
        "model": pipe.source,
        "model_weights_sha256": pipe.weights_sha256(),
        "dtype": str(pipe.dtype).removeprefix("torch."),
        "seed": seed,
        **prompts,
        **item.given(),
        "keep_original": settings.keep_original if item.given() else None,
        "rewritten_from": item.rewritten_from,
        "settings": {key: getattr(settings, key) for key in RECORDED_SETTINGS},
    }


def read_clip_record(path: str | os.PathLike) -> dict[str, Any]:
    """The record a clip written by `bridgedit generate` carries; ConfigError for any other file."""
    from .media import read_comment

    if not Path(path).is_file():
        raise FileNotFoundError(f"clip {path} does not exist")
    comment = read_comment(path)
    try:
        record = json.loads(comment)[RECORD_KEY] if comment else None
    except (json.JSONDecodeError, TypeError, KeyError):
        record = None
    if not isinstance(record, dict):
        raise ConfigError(f"{path} does not say how it was made (no bridgedit record in its comment tag)")
    return record


def generate_to_file(
    pipe,
    item: PromptItem,
    out_path: Path,
    settings: GenerationSettings,
    seed: int,
    *,
    progress: bool = True,
    step_callback=None,
    write: bool = True,
) -> dict[str, Any] | None:
    """Generate one sounding video and write it (plus a .wav when asked). Returns a record of what was written.
    `step_callback`: the pipeline's (after each sampling step; raising in it stops before anything is written).
    `write` False: sample only, return None (a process of a sequence-parallel group other than the main one)."""
    import torch

    device = pipe.device
    generator = torch.Generator(device="cpu" if device.type == "mps" else device).manual_seed(seed)
    output = pipe(
        **settings.prompts(item),
        **item.given(),
        **settings.call_kwargs(),
        generator=generator,
        progress=progress,
        step_callback=step_callback,
        output_type="np",
    )
    if not write:
        return None
    given = item.given()
    comment = json.dumps({RECORD_KEY: clip_record(pipe, item, settings, seed)})
    if given and settings.keep_original:  # the given stream untouched, cut to the clip, beside the generated one
        (kind, original), seconds = next(iter(given.items())), output.audio.shape[-1] / output.sample_rate
        write_with_original_stream(
            out_path,
            original,
            kind,
            seconds,
            frames=output.video[0],
            fps=output.fps,
            audio=output.audio[0],
            sample_rate=output.sample_rate,
            comment=comment,
        )
    else:
        write_sounding_video(
            out_path, output.video[0], output.fps, output.audio[0], output.sample_rate, comment=comment
        )
    record = {
        "id": item.id,
        "video": str(out_path),
        "seed": seed,
        "fps": output.fps,
        "sample_rate": output.sample_rate,
        "frames": int(output.video.shape[1]),
        "seconds": output.audio.shape[-1] / output.sample_rate,
    }
    if given:
        record["given"] = given
    if item.rewritten_from is not None:
        record.update(prompt=item.rewritten_from, video_prompt=item.video_prompt, audio_prompt=item.audio_prompt)
    if settings.write_wav:
        record["wav"] = str(write_wav(out_path.with_suffix(".wav"), output.audio[0], output.sample_rate))
    return record


def pending_items(items: list[PromptItem], out_dir: Path, *, wav: bool = False) -> list[tuple[int, PromptItem]]:
    """(line index, item) for every prompt whose .mp4 (or, with `wav`, whose .wav) is not there yet: a rerun with
    --wav after one without, or after a kill between the two writes, makes the clip again (the same seed: the same
    clip) with its .wav."""
    suffixes = (".mp4", ".wav") if wav else (".mp4",)
    return [
        (index, item)
        for index, item in enumerate(items)
        if not all((out_dir / f"{item.id}{suffix}").exists() for suffix in suffixes)
    ]


def run_batch(
    pipe,
    items: list[PromptItem],
    out_dir: Path,
    settings: GenerationSettings,
    base_seed: int,
    state,
    *,
    progress: bool = True,
    split: bool = True,
):
    """Generate every pending item; under `accelerate launch` each process (`state`) takes its share (`split`), or,
    sampling each clip together (sequence parallel, not `split`), all take every item and the main one writes.
    Yields the records of what this process wrote."""
    from tqdm.auto import tqdm

    if state.is_main_process:  # before the barrier: no process writes here until every one has listed its work
        for stale in remove_stale_temporaries(out_dir):
            logger.warning("removed %s, left by a write that was killed", stale)
    todo = pending_items(items, out_dir, wav=settings.write_wav)
    state.wait_for_everyone()  # every process lists the pending work before any process starts writing
    with state.split_between_processes(todo) if split else nullcontext(todo) as mine:
        for index, item in tqdm(mine, desc=f"prompts (process {state.process_index})", disable=not progress):
            seed = item.seed if item.seed is not None else base_seed + index
            write = split or state.is_main_process
            path = out_dir / f"{item.id}.mp4"
            record = generate_to_file(pipe, item, path, settings, seed, progress=False, write=write)
            if record is not None:
                record["process_index"] = state.process_index
                yield record


# ----------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------

BUNDLED_MODEL = Path(__file__).parent / "assets" / "demo-model"


def default_model() -> Path | None:
    """The bundled demo model (trained by `bridgedit synthetic recipe --install`), if this install has it."""
    return BUNDLED_MODEL if (BUNDLED_MODEL / "model_index.json").is_file() else None


def settings_with_model_defaults(
    explicit: dict[str, Any], model_defaults: dict[str, Any], **extra
) -> GenerationSettings:
    """Explicit values win, then the model's own generation defaults, then the paper's (GenerationSettings)."""
    known = set(GenerationSettings.__dataclass_fields__)
    merged = {k: v for k, v in model_defaults.items() if k in known}
    merged.update({k: v for k, v in explicit.items() if v is not None})
    return GenerationSettings(**merged, **extra)
