"""`bridgedit generate`: text -> sounding .mp4, one prompt pair or a resumable JSONL batch."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .. import generation
from ..acceleration import MEMORY_LEVELS, apply_memory_level, compile_blocks
from ..config import HOLD_MODES, ConfigError
from ..media import check_given_stream
from ..parallel import PARALLEL_MODES, enable_sequence_parallel

logger = logging.getLogger(__name__)

DEFAULT_REWRITE_MODEL = "Qwen/Qwen2.5-72B-Instruct"  # the paper's captioning LLM (§3.2); any served model works
REWRITE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bridgedit" / "rewrites.jsonl"

SIZE_KEYS = generation.FLAG_SETTINGS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    try:
        return generation.check_seed(seed)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate a sounding video (.mp4, H.264 + AAC) from a video prompt and an audio prompt",
        description="Generate sounding videos. Give a video caption and an audio caption (HVGC style), or one shared "
        "--prompt. Batch mode (--prompts FILE.jsonl --out-dir DIR) is resumable and splits across processes under "
        "`accelerate launch`. Unset sizes and steps come from the model's own defaults, else the paper's "
        "(832x480, 81 frames at 15 fps, 50 steps).",
    )
    text = parser.add_argument_group("prompts")
    text.add_argument("--video-prompt", help="the video caption T_V")
    text.add_argument("--audio-prompt", help="the audio caption T_A")
    text.add_argument("--prompt", help="one caption shared by both towers (instead of the two above)")
    text.add_argument("--negative-video-prompt")
    text.add_argument("--negative-audio-prompt")
    text.add_argument(
        "--prompts",
        metavar="FILE.jsonl",
        help='batch: one JSON object per line, {"id", "video_prompt", "audio_prompt"} or {"id", "prompt"}, '
        'optional "seed" and negatives',
    )
    given = parser.add_argument_group(
        "a given stream (sound for a video, video for a sound)",
        "Hold one stream and generate the other next to it through the bridges: --video IN.mp4 with --audio-prompt, "
        "or --audio IN.wav with --video-prompt (the held stream's caption is optional). Any length, rate or size: "
        "it is brought to the model's own as `prepare` does; the .mp4 carries it as the model saw it.",
    )
    given.add_argument("--video", metavar="IN.mp4", help="generate the sound for this file's video")
    given.add_argument("--audio", metavar="IN.wav", help="generate the video for this file's sound")
    given.add_argument(
        "--hold",
        choices=HOLD_MODES,
        help="clean: the given stream at noise level 0 (models trained with independent noise levels, as the demo "
        "model); renoised: noised to each step's level from one fixed draw (models trained with coupled timesteps, "
        "as the paper's and the released ones). Default: the model's own",
    )
    given.add_argument(
        "--keep-original",
        action="store_true",
        help="put the given stream in the .mp4 as the file has it (no re-encode; cut to the clip), not as the model "
        "saw it",
    )
    rewrite = parser.add_argument_group(
        "one prompt made into two captions",
        'With --prompt (or batch lines with only "prompt") and a server, an LLM writes a purely visual video '
        "caption and a purely auditory audio caption from it (HVGC's stages), cached per prompt and model.",
    )
    add_rewrite_arguments(rewrite)
    out = parser.add_argument_group("output")
    out.add_argument("--out", metavar="FILE.mp4", help="where to write the video (single mode)")
    out.add_argument("--out-dir", metavar="DIR", help="where to write <id>.mp4 files (batch mode)")
    out.add_argument("--wav", action="store_true", help="also write the audio as a .wav beside each .mp4")
    out.add_argument("--json", action="store_true", help="print a JSON record per video instead of a line of text")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--model", help="model folder or hub id (default: the bundled demo model)")
    sampling.add_argument("--seed", type=_seed, help="seed (batch: base seed, plus the line index; default 0)")
    sampling.add_argument(
        "--from",
        dest="from_clip",
        metavar="CLIP.mp4",
        help="make a clip written by bridgedit generate again, from the record of how it was made that it carries "
        "(model, prompts, seed, settings, given stream); any other flag overrides. Default --out: CLIP-again.mp4",
    )
    sampling.add_argument("--steps", dest="num_inference_steps", type=_positive_int)
    sampling.add_argument(
        "--video-guidance", type=float, help="video CFG scale w_v (default: the model's own, else the paper's 6.0)"
    )
    sampling.add_argument(
        "--audio-guidance",
        type=float,
        help="audio CFG scale w_a (default: the model's own, else the paper's 7.0; the bundled demo model's is 2.0)",
    )
    sampling.add_argument("--schedule", choices=("coupled", "native"))
    sampling.add_argument("--sampler", choices=("euler", "heun"), help="solver of the coupled schedule")
    sampling.add_argument(
        "--parallel",
        choices=PARALLEL_MODES,
        default="data",
        help="under `accelerate launch`: data: each process makes its own clips; sequence: all make each clip "
        "together, its video tokens split over them (docs/generation.md)",
    )
    sampling.add_argument(
        "--step-cache",
        type=float,
        metavar="THRESHOLD",
        help="opt-in speed-up: reuse a step's blocks after each tower's first when the first blocks changed by less "
        "than THRESHOLD since the last computed step (e.g. 0.1; docs/generation.md measures it)",
    )
    sampling.add_argument("--height", type=int)
    sampling.add_argument("--width", type=int)
    sampling.add_argument("--frames", dest="num_frames", type=int, help="number of frames, 4k+1")
    sampling.add_argument("--fps", type=float)
    sampling.add_argument("--audio-seconds", type=float, help="audio length (default: frames / fps)")
    sampling.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    sampling.add_argument(
        "--dtype", default="auto", help="auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16"
    )
    sampling.add_argument(
        "--offload-text-encoders",
        action="store_true",
        help="move the text encoders (UMT5-XXL, T5) to the CPU once the prompts are encoded",
    )
    sampling.add_argument(
        "--memory",
        choices=MEMORY_LEVELS,
        default="max",
        help="max: everything on the device; balanced: the text encoders leave it once the prompts are encoded and "
        "Wan's VAE decodes in tiles; low: also the towers' and bridges' weights stay in CPU memory, each layer's "
        "brought to the device as it runs (docs/generation.md, Speed and memory)",
    )
    sampling.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile each repeated block class (both towers' blocks, the bridges'): slower first clip, faster "
        "steps after it",
    )
    parser.set_defaults(run=run)


def add_rewrite_arguments(group) -> None:
    """The flags that configure the LLM server making one prompt into two captions (generate, app)."""
    group.add_argument("--rewrite-url", help="base URL of an OpenAI-compatible server, e.g. http://localhost:8001/v1")
    group.add_argument("--rewrite-model", default=DEFAULT_REWRITE_MODEL)
    group.add_argument("--rewrite-cache", default=str(REWRITE_CACHE), metavar="FILE.jsonl")
    group.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")


def rewriter_from_args(args: argparse.Namespace):
    """A `captioning.rewrite.Rewriter` for --rewrite-url, else None."""
    if not args.rewrite_url:
        return None
    from ..captioning.client import Endpoint
    from ..captioning.rewrite import Rewriter

    Path(args.rewrite_cache).parent.mkdir(parents=True, exist_ok=True)
    return Rewriter(Endpoint(args.rewrite_url, args.rewrite_model, args.api_key_env), cache=args.rewrite_cache)


def _apply_clip_record(args: argparse.Namespace) -> dict:
    """Fill what the command line leaves unset from the record `--from CLIP.mp4` carries; the settings the command line
    has no flag for (Wan text length, audio length rounding), returned."""
    if args.prompts:
        raise ConfigError("--from makes one clip again; it does not take --prompts")
    record = generation.read_clip_record(args.from_clip)
    settings = record.get("settings", {})
    for key in SIZE_KEYS:
        if getattr(args, key) is None and settings.get(key) is not None:
            setattr(args, key, settings[key])
    if args.video_prompt is None and args.audio_prompt is None and args.prompt is None:
        for key in ("video_prompt", "audio_prompt", "prompt", "negative_video_prompt", "negative_audio_prompt"):
            setattr(args, key, record.get(key))
    if args.video is None and args.audio is None:
        args.video, args.audio = record.get("video"), record.get("audio")
        args.keep_original = args.keep_original or bool(record.get("keep_original"))
    args.seed = record.get("seed", 0) if args.seed is None else args.seed
    if args.dtype == "auto" and record.get("dtype"):
        args.dtype = record["dtype"]
    if args.model is None:
        args.model = _recorded_model(record)
    if args.out is None:
        source = Path(args.from_clip)
        args.out = str(source.with_name(f"{source.stem}-again.mp4"))
    return {key: settings[key] for key in ("max_sequence_length", "audio_length_rounding") if key in settings}


def _recorded_model(record: dict) -> str:
    """The recorded model where it is still there (a folder, or a hub id); the bundled model where the record is of it
    (the same weights hash)."""
    model = record.get("model")
    if model and Path(model).exists():
        return model
    bundled = generation.default_model()
    if bundled is not None and record.get("model_weights_sha256"):
        from ..checkpoint import weights_sha256

        if weights_sha256(bundled / "bridge") == record["model_weights_sha256"]:
            return str(bundled)
    if model and not Path(model).is_absolute():  # a hub id
        return model
    raise ConfigError(f"the clip was made by the model {model!r}, which is not here: pass --model")


def _mode(args: argparse.Namespace) -> str:
    if args.prompts:
        if args.video or args.audio:
            raise ConfigError('batch mode reads a held stream from each line ("video" or "audio"), not --video/--audio')
        if args.out or args.video_prompt or args.audio_prompt or args.prompt:
            raise ConfigError("batch mode takes --prompts and --out-dir, without --out or single prompts")
        if not args.out_dir:
            raise ConfigError("--prompts needs --out-dir")
        return "batch"
    if args.out_dir:
        raise ConfigError("--out-dir is for batch mode (--prompts FILE.jsonl); use --out FILE.mp4 for one video")
    if not args.out:
        raise ConfigError("give --out FILE.mp4 (or --prompts FILE.jsonl --out-dir DIR)")
    return "single"


def run(args: argparse.Namespace) -> int:
    from ..pipeline import BridgeDiTPipeline

    recorded = _apply_clip_record(args) if args.from_clip else {}
    mode = _mode(args)
    explicit = {key: getattr(args, key) for key in SIZE_KEYS} | recorded
    generation.settings_with_model_defaults(explicit, {}).check()  # fail before loading any weights
    if mode == "single":
        out_path = generation.check_writable_file(args.out)
        item = generation.parse_prompt_item(
            {
                k: v
                for k, v in dict(
                    id=out_path.stem if generation.ID_PATTERN.match(out_path.stem) else "video",
                    video_prompt=args.video_prompt,
                    audio_prompt=args.audio_prompt,
                    prompt=args.prompt,
                    negative_video_prompt=args.negative_video_prompt,
                    negative_audio_prompt=args.negative_audio_prompt,
                    video=args.video,
                    audio=args.audio,
                ).items()
                if v is not None
            },
            "the command line",
        )
        items = [item]
    else:
        items = generation.read_prompt_file(args.prompts)
        out_dir = generation.check_writable_dir(args.out_dir)
    items = generation.rewrite_shared_prompts(items, rewriter_from_args(args))
    for item in items:  # a user's file is checked before any model loads
        for kind, path in item.given().items():
            check_given_stream(path, kind)
    state, device = generation.process_state(args.device)
    dtype = generation.resolve_dtype(args.dtype, device)
    model = args.model or generation.default_model()
    if model is None:
        raise ConfigError(
            f"no --model given, and this install has no bundled demo model ({generation.BUNDLED_MODEL} is "
            "missing): pass --model FOLDER_OR_HUB_ID (a folder written by BridgeDiTPipeline.save_pretrained), "
            "or train the demo model with `bridgedit synthetic recipe --out outputs/demo --install`"
        )

    sequence = args.parallel == "sequence"
    if sequence and (args.memory == "low" or args.compile):
        raise ConfigError("--parallel sequence does not combine with --memory low or --compile yet")
    pipe = BridgeDiTPipeline.from_pretrained(model, dtype=dtype).to(device)
    memory = apply_memory_level(pipe, args.memory)
    if args.compile:
        compile_blocks(pipe)
    if sequence:
        enable_sequence_parallel(pipe)
    settings = generation.settings_with_model_defaults(
        explicit,
        pipe.generation_defaults,
        write_wav=args.wav,
        offload_text_encoders=args.offload_text_encoders or memory["offload_text_encoders"],
        keep_original=args.keep_original,
    )
    settings.check()

    if mode == "single":
        record = generation.generate_to_file(
            pipe, items[0], out_path, settings, args.seed or 0, write=state.is_main_process or not sequence
        )
        records = [record] if record is not None else []
    else:
        skipped = len(items) - len(generation.pending_items(items, out_dir, wav=settings.write_wav))
        if skipped:
            logger.warning("%d of %d prompts already have a video in %s: skipped", skipped, len(items), out_dir)
        records = generation.run_batch(pipe, items, out_dir, settings, args.seed or 0, state, split=not sequence)
    for record in records:
        text = (
            json.dumps(record)
            if args.json
            else f"wrote {record['video']}" + (f" and {record['wav']}" if "wav" in record else "")
        )
        # one write of one whole line, flushed: several processes share stdout under `accelerate launch`, and a
        # single write below the pipe buffer size is never interleaved with another process's
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return 0
