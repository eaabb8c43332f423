"""The demo model's recipe, one command from nothing to a trained sounding-video model on a CPU (the paper's
recipe at toy scale):

1. world      `make_dataset`: train clips + held-out test clips of the synthetic world.
2. codecs     the patch video codec and a tiny AutoencoderOobleck, trained on the train clips (`codecs`).
3. init       tiny towers of the real classes (WanTransformer3DModel, StableAudioDiTModel) with random weights,
              random tiny UMT5 / T5 text encoders (frozen throughout) and the trained codecs, no bridges.
4. towers     pretrain a text-to-video and a text-to-audio tower: joint training with fusion "none" and
              policy "towers" is exactly two separate trainings (nothing connects the towers), each on its own
              caption (T_V / T_A).
5. bridges    from the pretrained towers: DCA bridges + the last block of each tower trainable, all else frozen.
              Three settings the paper does not name let the tiny bridges learn within the budget (docs/synthetic.md,
              "Why DCA does not beat none at 150 steps"): lr 5e-3, each stream's noise level drawn on its own, and
              an ALiBi time bias in the bridges' attention.

Every stage writes into OUT and is skipped when its output exists, so an interrupted recipe resumes (a
training stage from its latest checkpoint). The result, OUT/model, is a folder that
`BridgeDiTPipeline.from_pretrained` and `bridgedit generate --model` load; `install` copies it into the
package as the bundled default model.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..atomic import write_text_atomic
from ..config import BridgeConfig, ConfigError, ModelConfig, TrainableConfig
from ..data.manifest import MANIFEST_NAME
from ..generation import BUNDLED_MODEL
from .world import WorldSettings, make_dataset

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads RecipeSettings for its help without it
    import torch

logger = logging.getLogger(__name__)

#: Wan transformer of the demo: width 256 (4 heads x 64), as bridgedit.tiny's; 16 latent channels.
DEMO_WAN_TRANSFORMER = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=4,
    attention_head_dim=64,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=32,
    ffn_dim=512,
    num_layers=4,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=64,
)
#: Stable Audio DiT of the demo: width 128 (4 heads x 32, 2 key/value heads) over 8 latent channels.
DEMO_STABLE_AUDIO_TRANSFORMER = dict(
    sample_size=512,
    in_channels=8,
    num_layers=4,
    attention_head_dim=32,
    num_attention_heads=4,
    num_key_value_attention_heads=2,
    out_channels=8,
    cross_attention_dim=16,
    time_proj_dim=16,
    global_states_input_dim=32,
    cross_attention_input_dim=16,
)
#: The demo's world (`WorldSettings`): 128 x 128 pixels, 25 frames at 12 fps (2.08 s; Wan's 4k+1 frames), up to 4
#: events, a ball with anti-aliased edges: big enough that a ball reads as round and its path as a bounce, at the
#: first demo's 4 x 4 tokens a frame (docs/synthetic.md §3.3: why this size, and what a tower step costs)
DEMO_WORLD = dict(height=128, width=128, seconds=25 / 12, fps=12.0, sample_rate=4_000, max_events=4, smooth_edges=True)
#: The patch video codec (bridgedit.synthetic.patch_codec): 16x16-pixel patches -> 16 channels, none in time, so
#: every frame (and so every event's frame) has its own latent frame: 25 x 8 x 8 latents, 25 x 4 x 4 = 400 video
#: tokens of 32 x 32 pixels each. Its decoder reads each patch's 3 x 3 neighbourhood of latents: a ball across a
#: patch border is drawn from both sides (per-patch decoding drew it as a blocky cross)
DEMO_VIDEO_CODEC = dict(patch_size=16, z_dim=16, hidden_dim=256, decoder_kernel=3)
#: What a recipe recorded before the world and the video codec were settings meant (the first demo model's): the
#: world's defaults (64 x 64, 17 frames at 15 fps, hard edges) and 8x8-pixel patches
FIRST_WORLD: dict[str, Any] = {}
FIRST_VIDEO_CODEC = dict(patch_size=8, z_dim=16, hidden_dim=256)
#: Hop 16 at 4 kHz (250 latent frames/s, 4 ms each), 8 latent channels.
DEMO_OOBLECK_VAE = dict(
    encoder_hidden_size=16,
    downsampling_ratios=[4, 4],
    decoder_channels=16,
    decoder_input_channels=8,
    audio_channels=2,
    channel_multiples=[1, 2],
    sampling_rate=4_000,
)
#: time_bias 2: an audio token's attention to a video frame one latent frame away starts 2 (head 0) / 1 (head 1) logits
#: lower than to its own frame (BridgeConfig.time_bias), so the untrained bridges already read the matching moment
#: space_encoding: each video token's row and column, without which the bridges cannot tell a ball on the floor
#: from one in the air (docs/synthetic.md §3.2)
DEMO_BRIDGE = BridgeConfig(
    fusion="dca",
    video_blocks=(1, 3),
    audio_blocks=(1, 3),
    width=64,
    num_heads=2,
    timestep_embed_dim=32,
    time_bias=2.0,
    space_encoding=True,
)
#: audio guidance 2, not the paper's 7: at 7 these small towers' audio guidance places onsets by the text alone, 5 per
#: clip where the world makes 1.6, and DCA's sync lead over "none" with both streams generated is gone; at 2 it is
#: there (picked on the ablation's seeds 0-6, confirmed on fresh seeds 7-13: docs/synthetic.md, "The audio guidance
#: scale and DCA's lead")
DEMO_SAMPLING = dict(num_inference_steps=25, audio_guidance=2.0)
#: a stage's precision -> `bridgedit train`'s train.mixed_precision
PRECISION_MODES = {"fp32": "no", "bf16": "bf16"}
#: the bridge stage's freezing policy: bridges + the last block of each tower trainable, all else frozen
BRIDGE_STAGE_TRAINABLE = {"policy": "bridges+last_blocks", "video_last_blocks": 1, "audio_last_blocks": 1}


@dataclass(frozen=True)
class RecipeSettings:
    seed: int = 0
    world: dict[str, Any] = field(default_factory=lambda: dict(DEMO_WORLD))  # `WorldSettings` fields
    video_codec: dict[str, Any] = field(default_factory=lambda: dict(DEMO_VIDEO_CODEC))  # `PatchVideoCodec` fields
    train_clips: int = 768
    test_clips: int = 32
    video_codec_steps: int = 3000
    audio_codec_steps: int = 3000
    tower_steps: int = 3600
    bridge_steps: int = 1200
    batch_size: int = 16  # the tower stage's
    bridge_batch_size: int = 16
    tower_lr: float = 1e-3
    bridge_lr: float = 5e-3
    bridge: dict[str, Any] = field(default_factory=lambda: asdict(DEMO_BRIDGE))
    captions: str = "hvgc"  # or "shared": the caption ablation
    # bridge stage: each stream's noise level drawn on its own ("independent"), or t_V = 1000 t_A ("coupled", the
    # paper's); independent levels show the bridges clean-ish partners next to noisy streams, from which the
    # cross-modal signal is easiest to learn
    bridge_timesteps: str = "independent"
    # bridge stage: "bf16" (bf16 autocast, weights kept in float32; on a CPU only where bf16 is native, the trainer
    # falls back to float32 elsewhere, slower and with other numbers) or "fp32"
    bridge_precision: str = "bf16"
    # tower stage: the same choice (bf16 ran about 1.8 times the tower steps per minute on this project's test
    # machine, which is what fits the tower budget of 3,600 steps in the recipe's hour)
    tower_precision: str = "bf16"

    def __post_init__(self) -> None:
        unknown = set(self.world) - set(WorldSettings.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"world has no setting {', '.join(sorted(unknown))}")
        _ = self.world_settings  # its own checks
        for name in ("bridge_precision", "tower_precision"):
            if getattr(self, name) not in PRECISION_MODES:
                raise ValueError(f"{name} must be one of {', '.join(PRECISION_MODES)}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of_model(cls, model: str | Path) -> RecipeSettings:
        """The settings a model folder was made with (its recipe.json, which `install` copies beside it); a recipe
        recorded before the world and the video codec were settings made the first demo's."""
        recorded = json.loads((Path(model) / "recipe.json").read_text())
        recorded.setdefault("world", dict(FIRST_WORLD))
        recorded.setdefault("video_codec", dict(FIRST_VIDEO_CODEC))
        return cls(**recorded)

    @property
    def world_settings(self) -> WorldSettings:
        return WorldSettings(**self.world)

    @property
    def generation_defaults(self) -> dict[str, Any]:
        """What the recipe's model stores as its generation defaults: the world's clip, the demo's sampling."""
        world = self.world_settings
        size = dict(height=world.height, width=world.width, num_frames=world.standard.num_frames, fps=world.fps)
        return {**size, **DEMO_SAMPLING}


def _stage_done(folder: Path) -> bool:
    return (folder / "model_index.json").is_file()


# ----------------------------------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------------------------------


def make_world(out: Path, settings: RecipeSettings) -> Path:
    """The recipe's synthetic world, OUT/dataset (deterministic from the settings: made again the same)."""
    dataset = out / "dataset"
    if not (dataset / MANIFEST_NAME).is_file():
        make_dataset(
            dataset,
            clips=settings.train_clips + settings.test_clips,
            seed=settings.seed,
            test_clips=settings.test_clips,
            progress=True,
            **settings.world,
        )
    return dataset


@contextmanager
def model_world(model: str | Path, world: str | Path | None = None) -> Iterator[Path]:
    """The dataset of a recipe model's world: `world` when given (made before by the recipe or a benchmark), else
    made again from the model's recipe.json in a temporary folder, removed on leaving the block."""
    if world is not None:
        yield Path(world)
        return
    with tempfile.TemporaryDirectory() as scratch:
        yield make_world(Path(scratch), RecipeSettings.of_model(model))


def train_codecs(out: Path, dataset: Path, settings: RecipeSettings):
    """The two trained codecs (loaded from OUT/codecs when already trained)."""
    import torch
    from diffusers import AutoencoderOobleck

    from .codecs import load_clips, set_latent_statistics, train_audio_codec, train_video_codec
    from .patch_codec import PatchVideoCodec

    video_dir, audio_dir = out / "codecs" / "video", out / "codecs" / "audio"
    if not (video_dir / "config.json").is_file() or not (audio_dir / "config.json").is_file():
        frames, audio, _ = load_clips(dataset)
        if not (video_dir / "config.json").is_file():
            torch.manual_seed(settings.seed)
            video = PatchVideoCodec(**settings.video_codec)
            train_video_codec(video, frames, steps=settings.video_codec_steps, seed=settings.seed)
            set_latent_statistics(video, frames[:64])
            video.save_pretrained(video_dir)
        if not (audio_dir / "config.json").is_file():
            torch.manual_seed(settings.seed)
            sound = AutoencoderOobleck(**DEMO_OOBLECK_VAE)
            train_audio_codec(sound, audio, steps=settings.audio_codec_steps, seed=settings.seed)
            sound.save_pretrained(audio_dir)
    return PatchVideoCodec.from_pretrained(video_dir).eval(), AutoencoderOobleck.from_pretrained(audio_dir).eval()


def initial_pipeline(video_vae, audio_vae, seed: int, generation_defaults: dict[str, Any]):
    """Random tiny towers and text encoders of the real classes around the trained codecs; no bridges."""
    import torch
    from diffusers import StableAudioDiTModel, StableAudioPipeline, WanPipeline, WanTransformer3DModel

    from .. import tiny
    from ..pipeline import BridgeDiTPipeline

    tokenizer = tiny.tokenizer()
    torch.manual_seed(seed)
    video_transformer = WanTransformer3DModel(**DEMO_WAN_TRANSFORMER)
    audio_transformer = StableAudioDiTModel(**DEMO_STABLE_AUDIO_TRANSFORMER)
    video_pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny.umt5_encoder(len(tokenizer), seed=seed),
        vae=video_vae,
        transformer=video_transformer,
        scheduler=tiny.wan_scheduler(),
    )
    audio_pipe = StableAudioPipeline(
        tokenizer=tokenizer,
        text_encoder=tiny.t5_encoder(len(tokenizer), seed=seed + 1),
        projection_model=tiny.stable_audio_projection(seed=seed + 2),
        vae=audio_vae,
        transformer=audio_transformer,
        scheduler=tiny.stable_audio_scheduler(),
    )
    config = ModelConfig(bridge=BridgeConfig(fusion="none"), trainable=TrainableConfig(policy="towers"))
    return BridgeDiTPipeline.from_pipes(
        video_pipe, audio_pipe, config, video_source=None, audio_source=None, generation_defaults=generation_defaults
    )


def training_config(
    *,
    base: Path,
    dataset: Path,
    cache: Path,
    run_dir: Path,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    bridge: dict[str, Any],
    trainable: dict[str, Any],
    captions: str = "hvgc",
    timestep_coupling: str = "coupled",
    precision: str = "fp32",
) -> dict[str, Any]:
    """A `bridgedit train` config (as a dict; the recipe also writes it as YAML beside the run)."""
    return {
        "model": {"base": str(base), "bridge": bridge, "trainable": trainable},
        "data": {"dataset": str(dataset), "cache": str(cache), "captions": captions, "max_sequence_length": 32},
        "optim": {"lr": lr, "warmup_steps": min(50, steps // 10), "min_lr": lr / 10, "weight_decay": 1e-3},
        "train": {
            "steps": steps,
            "batch_size": batch_size,
            "mixed_precision": PRECISION_MODES[precision],
            "gradient_checkpointing": False,
            "seed": seed,
            "timesteps": {"distribution": "uniform", "coupling": timestep_coupling},
        },
        "checkpoint": {"dir": str(run_dir), "every": max(100, steps // 4)},
        "log": {"every": 50},
    }


def run_training(config: dict[str, Any], run_dir: Path) -> Path:
    """Train (resuming from the latest checkpoint if there is one); returns the final checkpoint folder."""
    from ..training.config import TrainConfig
    from ..training.trainer import LATEST_NAME, Trainer, checkpoint_folder

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    final = checkpoint_folder(run_dir, config["train"]["steps"])
    if _stage_done(final):
        return final
    resume = LATEST_NAME if (run_dir / LATEST_NAME).is_file() else None
    trainer = Trainer(TrainConfig.from_dict(config, str(run_dir / "config.yaml")), resume=resume)
    result = trainer.run()
    write_text_atomic(run_dir / "history.json", json.dumps(result.history))
    return final


def pretrain_towers(out: Path, dataset: Path, settings: RecipeSettings) -> Path:
    """Stage 4: the text-to-video and text-to-audio towers, trained separately (fusion none)."""
    init = out / "init"
    if not _stage_done(init):
        video_vae, audio_vae = train_codecs(out, dataset, settings)
        pipe = initial_pipeline(video_vae, audio_vae, settings.seed, settings.generation_defaults)
        pipe.save_pretrained(init, copy_towers=True)
    config = training_config(
        base=init,
        dataset=dataset,
        cache=out / "cache" / "towers",
        run_dir=out / "runs" / "towers",
        steps=settings.tower_steps,
        lr=settings.tower_lr,
        batch_size=settings.batch_size,
        seed=settings.seed,
        bridge={"fusion": "none"},
        trainable={"policy": "towers"},
        captions=settings.captions,
        precision=settings.tower_precision,
    )
    return run_training(config, out / "runs" / "towers")


def train_bridges(
    out: Path, dataset: Path, towers: Path, settings: RecipeSettings, name: str = "bridges", cache: Path | None = None
) -> Path:
    """Stage 5: bridges + the last block of each tower, from the pretrained towers. `cache`: the latent cache
    (default OUT/cache/bridges; a cache belongs to one towers folder)."""
    config = training_config(
        base=towers,
        dataset=dataset,
        cache=cache or out / "cache" / "bridges",
        run_dir=out / "runs" / name,
        steps=settings.bridge_steps,
        lr=settings.bridge_lr,
        batch_size=settings.bridge_batch_size,
        seed=settings.seed,
        bridge=settings.bridge,
        trainable=dict(BRIDGE_STAGE_TRAINABLE),
        captions=settings.captions,
        timestep_coupling=settings.bridge_timesteps,
        precision=settings.bridge_precision,
    )
    return run_training(config, out / "runs" / name)


def _timed(timings: dict[str, float], key: str, done: bool, stage):
    """Run a stage and add its duration to timings[key], unless it was already done: a resumed recipe keeps the
    times of the stages it skips (a stage interrupted midway counts only the part this call ran)."""
    started = time.perf_counter()
    result = stage()
    if not done:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - started
    return result


#: the packages whose builds decide a recipe run's weights (PyAV's FFmpeg encodes and decodes the world's video)
ENVIRONMENT_PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "av", "numpy", "scipy", "soundfile")


def environment() -> dict[str, Any]:
    """What, besides the seed and the settings, a recipe run's weights depend on: package versions, the CPU and the
    thread count (matrix products sum in a thread-dependent order)."""
    import importlib.metadata
    import platform

    import torch

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
        "packages": {name: importlib.metadata.version(name) for name in ENVIRONMENT_PACKAGES},
    }


def record_environment(out: Path) -> dict[str, Any]:
    """Write OUT/environment.json when a recipe run starts; a run resumed in another environment keeps the first
    one's and warns, naming what differs (its later stages may not repeat the same weights)."""
    path = out / "environment.json"
    current = environment()
    if not path.is_file():
        write_text_atomic(path, json.dumps(current, indent=2))
        return current
    recorded = json.loads(path.read_text())

    def flat(entry: dict[str, Any]) -> dict[str, Any]:  # the packages' versions beside the rest
        return {**{key: value for key, value in entry.items() if key != "packages"}, **entry.get("packages", {})}

    was, now = flat(recorded), flat(current)
    differing = {key: (value, now.get(key)) for key, value in was.items() if now.get(key) != value}
    if differing:
        changes = ", ".join(f"{key} {before} -> {after}" for key, (before, after) in differing.items())
        logger.warning(
            "%s was started in another environment (%s): the stages run now may not repeat that run's "
            "weights bit for bit",
            out,
            changes,
        )
    return recorded


def check_same_settings(out: Path, settings: RecipeSettings) -> None:
    """Refuse to resume a recipe folder made with other settings (e.g. by an older bridgedit, whose defaults differ):
    its finished stages would be reused, its unfinished runs continued under another schedule."""
    recorded_path = out / "recipe.json"
    if not recorded_path.is_file():
        return
    recorded = json.loads(recorded_path.read_text())
    wanted = json.loads(json.dumps(settings.to_dict()))  # tuples as lists, as the file has them
    differing = sorted(key for key in wanted.keys() | recorded.keys() if recorded.get(key) != wanted.get(key))
    if differing:
        changes = ", ".join(f"{key} {recorded.get(key)!r} -> {wanted.get(key)!r}" for key in differing)
        raise ConfigError(
            f"{out} holds a recipe made with other settings ({changes}); give another --out to start "
            "afresh, or the settings it was made with to resume it"
        )


def run_recipe(out: str | Path, settings: RecipeSettings = RecipeSettings()) -> Path:
    """All stages; returns OUT/model, a self-contained model folder. OUT/timings.json: each stage's duration."""
    from ..pipeline import BridgeDiTPipeline
    from ..training.trainer import checkpoint_folder

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_same_settings(out, settings)  # before anything, a finished model included: it was made with those settings
    model = out / "model"
    if _stage_done(model):
        return model
    write_text_atomic(out / "recipe.json", json.dumps(settings.to_dict(), indent=2))
    record_environment(out)
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}

    def save_timings() -> None:
        stages = ("world_s", "codecs_and_towers_s", "bridges_s")
        if all(stage in timings for stage in stages):
            timings["total_s"] = sum(timings[stage] for stage in stages)
        write_text_atomic(timings_path, json.dumps(timings, indent=2))

    world_done = (out / "dataset" / MANIFEST_NAME).is_file()
    dataset = _timed(timings, "world_s", world_done, lambda: make_world(out, settings))
    save_timings()
    towers_done = _stage_done(checkpoint_folder(out / "runs" / "towers", settings.tower_steps))
    towers = _timed(timings, "codecs_and_towers_s", towers_done, lambda: pretrain_towers(out, dataset, settings))
    save_timings()
    bridges_done = _stage_done(checkpoint_folder(out / "runs" / "bridges", settings.bridge_steps))
    bridges = _timed(timings, "bridges_s", bridges_done, lambda: train_bridges(out, dataset, towers, settings))
    save_timings()
    pipe = BridgeDiTPipeline.from_pretrained(bridges)
    pipe.generation_defaults = settings.generation_defaults
    pipe.save_pretrained(model, copy_towers=True)  # self-contained: no reference to the run folders
    logger.info("recipe finished (%s): %s", ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()), model)
    return model


def install(model: str | Path, target: Path = BUNDLED_MODEL, dtype: torch.dtype | None = None) -> Path:
    """Copy a model folder into the package as the bundled default model (replacing the previous one), its
    weights stored in `dtype` (default float16, which halves the size; `bridgedit generate` loads it in float32 on
    a CPU)."""
    import torch

    from ..pipeline import BridgeDiTPipeline

    dtype = torch.float16 if dtype is None else dtype

    model = Path(model)
    if not _stage_done(model):
        raise FileNotFoundError(f"{model} is not a model folder (model_index.json is missing)")
    pipe = BridgeDiTPipeline.from_pretrained(model).to(dtype=dtype)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pipe.save_pretrained(staging, copy_towers=True)
    for provenance in ("recipe.json", "timings.json", "environment.json"):  # how the model was made (run_recipe)
        if (model.parent / provenance).is_file():
            shutil.copy(model.parent / provenance, staging / provenance)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def smaller(settings: RecipeSettings, factor: int) -> RecipeSettings:
    """The same recipe with every budget divided by `factor` (for tests and quick looks)."""
    return replace(
        settings,
        train_clips=max(settings.batch_size, settings.bridge_batch_size, settings.train_clips // factor),
        test_clips=max(2, settings.test_clips // factor),
        video_codec_steps=max(2, settings.video_codec_steps // factor),
        audio_codec_steps=max(2, settings.audio_codec_steps // factor),
        tower_steps=max(2, settings.tower_steps // factor),
        bridge_steps=max(2, settings.bridge_steps // factor),
    )
