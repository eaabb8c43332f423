"""Training BridgeDiT from the cache with HF accelerate (one CPU process, or N GPUs / nodes under `accelerate launch`).

Each step (Eq. 4-6): draw t_A (uniform, or logit-normal) and t_V = 1000 t_A (or independently), noise both
latents, drop each caption independently with its probability (replaced by that tower's null condition),
run the joint model, and minimise L = L_audio + L_video, the MSE to v = alpha eps_A - sigma x_A and to
eps_V - x_V. Randomness of a step comes from (seed, step, micro-batch, process), the data order from (seed, epoch)
and the initial weights of bridges the config adds from the seed, so a run is reproducible from its seed and a resumed
run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..atomic import write_text_atomic
from ..conditioning import audio_conditions, pad_states, video_conditions
from ..config import ConfigError
from ..cpu_attention import MatmulAttention
from ..data.cache import cache_dataset, load_cache_info
from ..data.dataset import CachedBatch, CachedClips
from ..diffusion.objectives import (
    VIDEO_TIMESTEP_SCALE,
    audio_target,
    couple_timesteps,
    noise_audio,
    noise_video,
    video_target,
)
from ..pipeline import BridgeDiTPipeline
from ..towers import AudioConditions
from .config import TrainConfig
from .state import load_training_state, save_training_state

logger = logging.getLogger(__name__)

LATEST_NAME = "latest"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX): bf16 autocast is then faster than float32
    (experiments/synthetic/bridge_step_cost.py); elsewhere bf16 is emulated, with no gain to expect."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check() for check in checks if check is not None)


def bf16_unavailable_reason() -> str | None:
    """Why training under bf16 autocast would not be native here; None where it is (a GPU, or a CPU with native bf16)."""
    if torch.cuda.is_available() or cpu_has_native_bf16():
        return None
    return "this CPU has no native bf16 (AVX512-BF16 or AMX)"


def effective_precision(requested: str, use_cpu: bool) -> str:
    """The mixed precision a run uses: the requested one on a GPU; on a CPU bf16 where it is native, else float32."""
    if not use_cpu or requested == "no" or (requested == "bf16" and cpu_has_native_bf16()):
        return requested
    reason = "this CPU has no native bf16" if requested == "bf16" else "fp16 is a GPU precision"
    logger.warning("training in float32 instead of %s: %s", requested, reason)
    return "no"


def checkpoint_folder(checkpoint_dir: str | Path, step: int) -> Path:
    """Where a run saves its checkpoint of `step`."""
    return Path(checkpoint_dir) / f"checkpoint-{step:06d}"


# ----------------------------------------------------------------------------------------------------
# One step's pieces (plain functions, tested on their own)
# ----------------------------------------------------------------------------------------------------


def step_generator(seed: int, step: int, micro: int, process: int) -> torch.Generator:
    """The randomness of one micro-batch on one process: independent of anything that happened before it."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_009 + micro * 101 + process)


def sample_timesteps(
    batch_size: int, settings: dict[str, Any], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(t_video in [0, 1000], t_audio in [0, 1]); coupled: t_V = 1000 t_A (§3.1); integer: t_V = floor(999 t_A), the
    release's integer video timestep; independent: each drawn on its own.

    "sobol" draws a scrambled Sobol point per sample (the release), the sequence scrambled by a seed from `generator`:
    like the other distributions a function of the step's generator alone, so a resumed run draws the same."""

    def draw() -> torch.Tensor:
        if settings["distribution"] == "logit_normal":
            normal = torch.randn(batch_size, generator=generator) * settings["logit_std"] + settings["logit_mean"]
            return torch.sigmoid(normal)
        if settings["distribution"] == "sobol":
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            return torch.quasirandom.SobolEngine(1, scramble=True, seed=seed).draw(batch_size)[:, 0]
        return torch.rand(batch_size, generator=generator)

    t_audio = draw()
    if settings["coupling"] == "integer":
        return torch.floor(t_audio * (VIDEO_TIMESTEP_SCALE - 1)), t_audio
    t_video = couple_timesteps(t_audio) if settings["coupling"] == "coupled" else couple_timesteps(draw())
    return t_video, t_audio


def draw_caption_drops(batch_size: int, p_video: float, p_audio: float, generator: torch.Generator):
    """Independent per-sample, per-modality caption dropout (True = use the null condition)."""
    return torch.rand(batch_size, generator=generator) < p_video, torch.rand(batch_size, generator=generator) < p_audio


@torch.no_grad()
def batch_conditions(
    pipe: BridgeDiTPipeline,
    batch: CachedBatch,
    drop_video: torch.Tensor,
    drop_audio: torch.Tensor,
    null_video_text: torch.Tensor,
    info: dict[str, Any],
    device: torch.device,
):
    """The towers' conditions for a batch, with dropped or missing captions set to each tower's null condition."""
    drop_video = drop_video | torch.tensor([t is None for t in batch.video_text])
    drop_audio = drop_audio | torch.tensor([t is None for t in batch.audio_text])
    video_text = [null_video_text if drop else text for text, drop in zip(batch.video_text, drop_video.tolist())]
    video = video_conditions(pad_states([t.to(device) for t in video_text], info["video_max_tokens"]))
    width = pipe.audio_pipe.transformer.config.cross_attention_input_dim
    audio_text = [torch.zeros(1, width) if text is None else text for text in batch.audio_text]
    audio = audio_conditions(
        pipe.audio_pipe, pad_states([t.to(device) for t in audio_text], info["audio_max_tokens"]), batch.seconds
    )
    keep = (~drop_audio).to(device=device, dtype=audio.text_states.dtype)[:, None, None]
    # Stable Audio's null: zero text-and-duration states, the same global (duration) token
    audio = AudioConditions(audio.text_states * keep, audio.global_states)
    return video, audio


def diffusion_loss(
    model,
    pipe,
    batch: CachedBatch,
    conditions,
    generator: torch.Generator,
    settings: dict[str, Any],
    device: torch.device,
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_audio + L_video (Eq. 4-6) for one batch."""
    x_video, x_audio = batch.video_latents.to(device), batch.audio_latents.to(device)
    t_video, t_audio = sample_timesteps(x_video.shape[0], settings, generator)
    t_video, t_audio = t_video.to(device), t_audio.to(device)
    noise_v = torch.randn(x_video.shape, generator=generator).to(device)
    noise_a = torch.randn(x_audio.shape, generator=generator).to(device)
    pred_video, pred_audio = model(
        noise_video(x_video, noise_v, t_video), noise_audio(x_audio, noise_a, t_audio), t_video, t_audio, *conditions
    )
    loss_video = F.mse_loss(pred_video.float(), video_target(x_video, noise_v))  # Eq. 6
    loss_audio = F.mse_loss(pred_audio.float(), audio_target(x_audio, noise_a, t_audio))  # Eq. 5
    return loss_audio + loss_video, {"loss_video": loss_video.item(), "loss_audio": loss_audio.item()}


def rank_batches(
    num_items: int, batch_size: int, num_processes: int, process: int, seed: int, epoch: int
) -> list[list[int]]:
    """This process's batches of one epoch: a seeded permutation cut into global batches, each split by process."""
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed * 7_919 + epoch)).tolist()
    global_size = batch_size * num_processes
    if num_items < global_size:
        raise ConfigError(
            f"{num_items} training clips cannot fill one batch of {batch_size} x {num_processes} process(es)"
        )
    starts = range(0, num_items - global_size + 1, global_size)
    return [order[s + process * batch_size : s + (process + 1) * batch_size] for s in starts]


# ----------------------------------------------------------------------------------------------------
# Building the run
# ----------------------------------------------------------------------------------------------------


def build_pipeline(config: TrainConfig) -> BridgeDiTPipeline:
    section = config.model
    if section.base == "tiny":
        from .. import tiny

        pipe = tiny.bridgedit_pipeline(seed=config.train.seed)
    elif section.base is not None:
        # in float32 whatever it was stored in (the bundled demo model is float16): the weights a run updates, and the
        # text encoders and codecs that `cache` runs, stay in one dtype; mixed precision is the autocast's job
        pipe = BridgeDiTPipeline.from_pretrained(section.base, dtype=torch.float32)
    else:
        from diffusers import StableAudioPipeline, WanPipeline

        from ..pipeline import load_tower_pipeline

        pipe = BridgeDiTPipeline.from_pipes(
            load_tower_pipeline(WanPipeline, section.video, "video"),
            load_tower_pipeline(StableAudioPipeline, section.audio, "audio"),
        )
    model_config = section.model_config(pipe.model.config)
    if model_config != pipe.model.config:
        bridges = pipe.model.bridges
        # new bridges draw their initial weights from the run's seed, not from whatever the process's global random
        # state holds (in a long-lived process, e.g. a benchmark running several trainings, that differs run to run);
        # the global state is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.train.seed)
            pipe = BridgeDiTPipeline.from_pipes(
                pipe.video_pipe,
                pipe.audio_pipe,
                model_config,
                video_source=pipe.video_source,
                audio_source=pipe.audio_source,
                generation_defaults=pipe.generation_defaults,
            )
        if model_config.bridge == bridges.config:  # only the freezing policy changed: keep the bridges' weights
            pipe.model.bridges.load_state_dict(bridges.state_dict())
    return pipe


def check_dataset(config: TrainConfig) -> None:
    """FileNotFoundError unless the dataset is there or is to be made (data.synthetic): checked before any tower
    loads (the real ones are about 30 GB)."""
    dataset = Path(config.data.dataset)
    if not (dataset / "manifest.jsonl").is_file() and config.data.synthetic is None:
        raise FileNotFoundError(f"{dataset} is not a prepared dataset (run bridgedit prepare, or set data.synthetic)")


def ensure_dataset_and_cache(config: TrainConfig, pipe: BridgeDiTPipeline, state, model_name: str) -> None:
    """Make the synthetic dataset and the cache when missing, so a config trains from nothing in one command."""
    dataset = Path(config.data.dataset)
    check_dataset(config)
    if not (dataset / "manifest.jsonl").is_file():
        if state.is_main_process:
            from ..synthetic import make_dataset

            make_dataset(dataset, **config.data.synthetic)
        state.wait_for_everyone()
    cache_dataset(
        pipe,
        dataset,
        config.data.cache_dir,
        model=model_name,
        state=state,
        max_sequence_length=config.data.max_sequence_length,
        progress=state.is_main_process,
    )


@dataclass
class TrainResult:
    steps: int
    history: list[dict[str, float]]  # one record per optimizer step of this run
    checkpoint: Path | None


class Trainer:
    def __init__(self, config: TrainConfig, *, resume: str | Path | None = None, progress: bool = True) -> None:
        from accelerate import Accelerator

        self.config = config
        train = config.train
        use_cpu = not torch.cuda.is_available()
        self.accelerator = Accelerator(
            mixed_precision=effective_precision(train.mixed_precision, use_cpu),
            cpu=use_cpu,
            log_with="tensorboard" if config.log.tensorboard else None,
            project_dir=config.checkpoint.dir,
        )
        self.progress = progress and self.accelerator.is_main_process
        self.device = self.accelerator.device
        check_dataset(config)  # before the towers load
        self.pipe = build_pipeline(config)
        self.pipe.to(self.device)
        # how this model is to hold a given stream when generating the other: clean where each stream's noise level
        # was drawn on its own, at each step's level (replacement sampling) where they were coupled
        self.pipe.generation_defaults["hold"] = "clean" if train.timesteps["coupling"] == "independent" else "renoised"
        model_name = config.model.base or f"{config.model.video}+{config.model.audio}"
        ensure_dataset_and_cache(config, self.pipe, self.accelerator.state, model_name)
        self.clips = CachedClips(
            config.data.dataset,
            config.data.cache_dir,
            split=config.data.split,
            captions=config.data.captions,
            allow_missing_captions=config.data.allow_missing_captions,
        )
        self.info = load_cache_info(config.data.cache_dir)
        self.null_video_text = self.clips.null_video_text

        self.model = self.pipe.model
        for component in (
            self.pipe.video_pipe.text_encoder,
            self.pipe.video_pipe.vae,
            self.pipe.audio_pipe.text_encoder,
            self.pipe.audio_pipe.vae,
            self.pipe.audio_pipe.projection_model,
        ):
            component.requires_grad_(False).eval()  # encoders only make inputs; the BridgeDiT policy covers the rest
        if train.frozen_dtype == "bfloat16":
            if self.accelerator.mixed_precision == "bf16":
                self.model.cast_frozen_parameters(torch.bfloat16)
            else:
                logger.warning("train.frozen_dtype bfloat16 needs bf16 mixed precision: kept in float32")
        if train.gradient_checkpointing:
            self.model.enable_gradient_checkpointing()
        self.model.train()
        self.parameters = [p for p in self.model.parameters() if p.requires_grad]
        optim = config.optim
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay
        )
        from transformers import get_constant_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup

        if optim.schedule == "constant":  # the release: linear warm-up, then the base lr
            self.scheduler = get_constant_schedule_with_warmup(self.optimizer, num_warmup_steps=optim.warmup_steps)
        else:  # Table 5: linear warm-up, then cosine decay to min_lr
            self.scheduler = get_cosine_with_min_lr_schedule_with_warmup(
                self.optimizer, num_warmup_steps=optim.warmup_steps, num_training_steps=train.steps, min_lr=optim.min_lr
            )
        # bf16 attention as matrix products on a CPU (2x PyTorch's fused kernel there); other calls pass through. Not
        # under gradient checkpointing: its recomputation in backward runs outside the mode, with the fused kernel,
        # whose saved tensors differ from the forward's (torch.utils.checkpoint refuses)
        use_matmul_attention = self.device.type == "cpu" and not train.gradient_checkpointing
        self.attention = MatmulAttention() if use_matmul_attention else nullcontext()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        if resume is not None:
            self._resume(resume)
        self.wrapped, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        if config.log.tensorboard:
            self.accelerator.init_trackers("bridgedit", config={"steps": train.steps, "lr": optim.lr})

    # ------------------------------------------------------------------------------------------------

    def _resume(self, resume: str | Path) -> None:
        from ..checkpoint import load_bridge_weights

        path = Path(resume)
        if path.name == LATEST_NAME or str(resume) == LATEST_NAME:
            pointer = Path(self.config.checkpoint.dir) / LATEST_NAME
            if not pointer.is_file():
                raise FileNotFoundError(f"no checkpoint to resume in {self.config.checkpoint.dir}")
            path = Path(self.config.checkpoint.dir) / pointer.read_text().strip()
        load_bridge_weights(self.model, path / "bridge")
        progress = load_training_state(path, self.optimizer, self.scheduler)
        if progress["seed"] != self.config.train.seed:
            raise ConfigError(
                f"{path} was trained with seed {progress['seed']}, the config says {self.config.train.seed}"
            )
        self.step, self.epoch, self.batch_in_epoch = progress["step"], progress["epoch"], progress["batch_in_epoch"]
        logger.info("resumed from %s at step %d", path, self.step)

    def _next_batch(self) -> CachedBatch:
        state = self.accelerator.state
        while True:
            batches = rank_batches(
                len(self.clips),
                self.config.train.batch_size,
                state.num_processes,
                state.process_index,
                self.config.train.seed,
                self.epoch,
            )
            if self.batch_in_epoch < len(batches):
                indices = batches[self.batch_in_epoch]
                self.batch_in_epoch += 1
                return self.clips.batch(indices)
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    def save_checkpoint(self) -> Path:
        directory = checkpoint_folder(self.config.checkpoint.dir, self.step)
        model_state = self.accelerator.get_state_dict(self.wrapped)  # gathered in full under FSDP (collective)
        if self.accelerator.is_main_process:
            # written whole under a hidden name, then renamed: a checkpoint folder is complete or absent, and
            # `latest` (written atomically after the rename) only ever names a complete one
            partial = directory.with_name(f".{directory.name}.partial")
            shutil.rmtree(partial, ignore_errors=True)  # a save killed before
            self.pipe.save_pretrained(partial, model_state=model_state)
            save_training_state(
                partial,
                self.optimizer.optimizer if hasattr(self.optimizer, "optimizer") else self.optimizer,
                self.scheduler,
                {
                    "step": self.step,
                    "epoch": self.epoch,
                    "batch_in_epoch": self.batch_in_epoch,
                    "seed": self.config.train.seed,
                },
            )
            if directory.exists():  # the same step saved before (a run resumed from an earlier checkpoint)
                shutil.rmtree(directory)
            partial.rename(directory)
            write_text_atomic(Path(self.config.checkpoint.dir) / LATEST_NAME, directory.name)
        self.accelerator.wait_for_everyone()
        return directory

    def run(self, stop_at: int | None = None) -> TrainResult:
        """Train to `train.steps` (or stop early after step `stop_at`, as an interrupted run would)."""
        train, accelerator = self.config.train, self.accelerator
        history, last_checkpoint = [], None
        end = min(train.steps, stop_at) if stop_at is not None else train.steps
        bar = tqdm(total=train.steps, initial=self.step, desc="train", disable=not self.progress)
        process = accelerator.state.process_index
        while self.step < end:
            started = time.perf_counter()
            parts = {"loss_video": 0.0, "loss_audio": 0.0}
            for micro in range(train.grad_accum):
                generator = step_generator(train.seed, self.step, micro, process)
                batch = self._next_batch()
                drops = draw_caption_drops(
                    len(batch.seconds), train.caption_dropout["video"], train.caption_dropout["audio"], generator
                )
                conditions = batch_conditions(self.pipe, batch, *drops, self.null_video_text, self.info, self.device)
                sync = micro == train.grad_accum - 1
                with (
                    accelerator.autocast(),
                    self.attention,
                    accelerator.no_sync(self.wrapped) if not sync else nullcontext(),
                ):
                    loss, values = diffusion_loss(
                        self.wrapped, self.pipe, batch, conditions, generator, train.timesteps, self.device
                    )
                    accelerator.backward(loss / train.grad_accum)
                for key, value in values.items():
                    parts[key] += value / train.grad_accum
            max_norm = self.config.optim.max_grad_norm
            grad_norm = accelerator.clip_grad_norm_(self.parameters, math.inf if max_norm is None else max_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1

            seconds = time.perf_counter() - started
            record = {
                "step": self.step,
                "loss": parts["loss_video"] + parts["loss_audio"],
                **parts,
                "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": float(grad_norm),
                "samples_per_s": train.batch_size * train.grad_accum * accelerator.num_processes / seconds,
            }
            history.append(record)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
            if self.config.log.tensorboard:
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=self.step)
            if self.progress and (self.step % self.config.log.every == 0 or self.step == 1):
                tqdm.write(
                    f"step {self.step:6d}  loss {record['loss']:.4f} (video {parts['loss_video']:.4f}, "
                    f"audio {parts['loss_audio']:.4f})  lr {record['lr']:.2e}  grad {record['grad_norm']:.3f}  "
                    f"{record['samples_per_s']:.1f} samples/s"
                )
            if self.step % self.config.checkpoint.every == 0 or self.step == train.steps:
                last_checkpoint = self.save_checkpoint()
        bar.close()
        if self.config.log.tensorboard:
            accelerator.end_training()
        return TrainResult(steps=self.step, history=history, checkpoint=last_checkpoint)


def summarize(history: list[dict[str, float]], window: int = 10) -> dict[str, Any]:
    """Mean loss over the first and last `window` steps of a run."""
    if not history:
        return {}
    window = max(1, min(window, len(history) // 2 or 1))
    first = sum(r["loss"] for r in history[:window]) / window
    last = sum(r["loss"] for r in history[-window:]) / window
    return {"first_loss": first, "last_loss": last, "ratio": first / last if last else math.inf}
