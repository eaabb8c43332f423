"""BridgeDiTPipeline: text -> (video, audio), diffusers-style (App. C.3).

It joins a diffusers `WanPipeline` and `StableAudioPipeline` (their tokenizers, text encoders, VAEs,
transformers and schedulers) with a `BridgeDiT` over the two transformers. Text is encoded once per
call with each pipeline's own `encode_prompt`; sampling runs the joint network under per-modality
classifier-free guidance (Eq. 11-12) on either schedule:

- "coupled" (default): one time grid with t_V = 1000 t_A at every step, the pairs the bridges are
  trained on; the grid is the video scheduler's own shifted flow grid.
- "native": each tower's own scheduler in lockstep; with no (or an identity) bridge the latents equal
  WanPipeline's and StableAudioPipeline's for the same inputs.

Audio length: StableAudioPipeline always denoises its DiT's whole window (1,024 latent frames, about
47.5 s for Stable Audio Open) and crops the waveform. BridgeDiTPipeline denoises latents of the
clip's own length (117 frames for 5.4 s) with the duration conditioning (seconds_start = 0,
seconds_total = clip length) set to match, so an untrained-bridge ("zero-shot") audio track is not
the same as Stable Audio's own output for that prompt. Pass `audio_latents` of the window length to
reproduce StableAudioPipeline exactly (the native-schedule tests do).
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import StableAudioPipeline, WanPipeline
from diffusers.utils.torch_utils import randn_tensor

from . import __version__
from .atomic import write_text_atomic
from .checkpoint import (
    WEIGHTS_NAME,
    CheckpointError,
    load_bridge_weights,
    read_bridge_config,
    save_bridge,
    weights_sha256,
)
from .conditioning import audio_conditions, null_audio_conditions, video_conditions
from .config import BridgeConfig, ClipSpec, CodecStrides, ConfigError, ModelConfig, SequenceLengths
from .cpu_attention import MatmulAttention
from .diffusion import (
    COUPLED_SAMPLERS,
    HOLD_MODES,
    GuidedDenoiser,
    StepCache,
    StepCallback,
    coupled_grid,
    hold_fixed,
    sample_native,
)
from .media import ClipStandard, read_given_audio, read_given_video, standard_audio, standard_frames
from .model import BridgeDiT

# saved demo models name their video codec's module (`bridgedit.patch_codec`, or `bridgedit.synthetic.patch_codec` since
# the codec moved) and diffusers loads a component only from a module already imported: this imports both, here where
# the towers load
from .patch_codec import PatchVideoCodec  # noqa: F401
from .towers import AudioConditions, VideoConditions

logger = logging.getLogger(__name__)

INDEX_NAME = "model_index.json"
SCHEDULES = ("coupled", "native")
OUTPUT_TYPES = ("np", "pt", "latent")


@dataclass
class BridgeDiTOutput:
    """video: "np" uint8 (B, F, H, W, 3); "pt" float in [0, 1] (B, F, 3, H, W); "latent" (B, C, F', H', W').
    audio: "np" float32 / "pt" float (B, 2, samples) in [-1, 1]; "latent" (B, C, T)."""

    video: Any
    audio: Any
    fps: float
    sample_rate: int
    step_cache: StepCache | None = None  # the run's first-block cache, with its counts (when one was asked for)


@dataclass
class PromptStates:
    """Encoded prompts: conditional and null conditions per tower, each with batch B."""

    video: VideoConditions
    audio: AudioConditions
    null_video: VideoConditions
    null_audio: AudioConditions


def _as_list(prompt: str | list[str] | None, name: str) -> list[str] | None:
    if prompt is None:
        return None
    if isinstance(prompt, str):
        return [prompt]
    if not isinstance(prompt, (list, tuple)) or not all(isinstance(p, str) for p in prompt):
        raise ConfigError(f"{name} must be a string or a list of strings")
    return list(prompt)


def _negatives(negative: str | list[str] | None, batch: int, name: str) -> list[str] | None:
    """One negative prompt per sample (a single string applies to all)."""
    negatives = _as_list(negative, name)
    if negatives is None:
        return None
    if len(negatives) == 1:
        return negatives * batch
    if len(negatives) != batch:
        raise ConfigError(f"{name} has {len(negatives)} entries for {batch} prompt(s)")
    return negatives


#: model_limits' keys: how an error names each, and what in the model holds it
LIMIT_NAMES = {
    "num_frames": ("frames", "its positional table"),
    "height": ("height", "its positional table"),
    "width": ("width", "its positional table"),
    "audio_seconds": ("audio seconds", "its duration conditioning"),
}


class BridgeDiTPipeline:
    def __init__(
        self,
        video_pipe: WanPipeline,
        audio_pipe: StableAudioPipeline,
        model: BridgeDiT,
        *,
        video_source: str | None = None,
        audio_source: str | None = None,
        generation_defaults: dict[str, Any] | None = None,
    ) -> None:
        if getattr(video_pipe, "transformer_2", None) is not None:
            raise ConfigError(
                "Wan 2.2 two-expert pipelines (transformer_2) are not supported; use a Wan 2.1 T2V pipeline"
            )
        if (
            model.video_tower.transformer is not video_pipe.transformer
            or model.audio_tower.transformer is not audio_pipe.transformer
        ):
            raise ConfigError("the BridgeDiT must wrap the two pipelines' own transformers")
        self.video_pipe = video_pipe
        self.audio_pipe = audio_pipe
        self.model = model.eval()
        # where the towers came from (hub id or folder); None means "only in memory": saved as copies
        self.video_source = video_source
        self.audio_source = audio_source
        # the model's own sampling defaults (e.g. a small demo model's size and steps), used by the CLI
        self.generation_defaults = dict(generation_defaults or {})
        # where `from_pretrained` loaded the model from (a folder's absolute path or a hub id) and its weights file;
        # None for a pipeline built in memory
        self.source: str | None = None
        self.weights_file: Path | None = None
        # the device the model's weights are brought to as they run, when they are kept off it
        # (`acceleration.offload_model_weights`); None: the weights live where they run
        self.onload_device: torch.device | None = None

    # ------------------------------------------------------------------------------------------------
    # Construction and persistence
    # ------------------------------------------------------------------------------------------------

    @classmethod
    def from_pipes(
        cls,
        video_pipe: WanPipeline,
        audio_pipe: StableAudioPipeline,
        bridge: BridgeConfig | ModelConfig | None = None,
        **kwargs,
    ) -> BridgeDiTPipeline:
        """Join two diffusers pipelines; `bridge=None` means no bridges (the paper's "separate" Wan + SDA).

        A pipeline loaded with `from_pretrained` remembers its hub id or folder; `save_pretrained` then refers
        to it instead of copying the tower (pass video_source=None / audio_source=None to force a copy).
        """
        kwargs.setdefault("video_source", _pipeline_source(video_pipe))
        kwargs.setdefault("audio_source", _pipeline_source(audio_pipe))
        if bridge is None:
            config = ModelConfig(bridge=BridgeConfig(fusion="none"))
        elif isinstance(bridge, BridgeConfig):
            config = ModelConfig(bridge=bridge)
        else:
            config = bridge
        model = BridgeDiT(video_pipe.transformer, audio_pipe.transformer, config)
        # only the new modules follow the towers; the towers keep diffusers' own per-module dtypes
        # (e.g. Wan's rope, time embedder and norms stay float32 in a bfloat16 model)
        model.bridges.to(device=video_pipe.transformer.device, dtype=video_pipe.transformer.dtype)
        return cls(video_pipe, audio_pipe, model, **kwargs)

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, *, dtype: torch.dtype | None = None) -> BridgeDiTPipeline:
        """Load a folder (or hub repo) written by `save_pretrained`: towers by reference or copy, plus the bridge."""
        folder = _resolve_folder(path_or_id)
        index_path = folder / INDEX_NAME
        if not index_path.is_file():
            raise FileNotFoundError(f"{path_or_id} is not a bridgedit model: {INDEX_NAME} is missing")
        index = json.loads(index_path.read_text())
        if index.get("_class_name") != cls.__name__:
            raise ConfigError(f"{index_path} describes a {index.get('_class_name')!r}, not a {cls.__name__}")
        kwargs = {"dtype": dtype} if dtype is not None else {}
        video_ref, video_source = _tower_reference(folder, index["video"])
        audio_ref, audio_source = _tower_reference(folder, index["audio"])
        video_pipe = load_tower_pipeline(WanPipeline, video_ref, "video", kwargs)
        audio_pipe = load_tower_pipeline(StableAudioPipeline, audio_ref, "audio", kwargs)
        bridge_folder = folder / index["bridge"]
        config = read_bridge_config(bridge_folder)
        # a tower whose weights the checkpoint changed is no longer its source: saving it again must copy it
        # (else a later save with another freezing policy would lose the trained blocks)
        pipe = cls.from_pipes(
            video_pipe,
            audio_pipe,
            config,
            generation_defaults=index.get("generation_defaults"),
            video_source=None if config.trainable.trains_tower("video") else video_source,
            audio_source=None if config.trainable.trains_tower("audio") else audio_source,
        )
        load_bridge_weights(pipe.model, bridge_folder)
        pipe.source = os.fspath(path_or_id) if not Path(path_or_id).exists() else str(Path(path_or_id).resolve())
        pipe.weights_file = bridge_folder / WEIGHTS_NAME
        return pipe

    def weights_sha256(self) -> str | None:
        """sha256 of the loaded bridge checkpoint's weights file (bridges and trained tower blocks), None for a
        pipeline built in memory; computed once."""
        if getattr(self, "_weights_sha256", None) is None and self.weights_file is not None:
            self._weights_sha256 = weights_sha256(self.weights_file.parent)
        return getattr(self, "_weights_sha256", None)

    def save_pretrained(
        self,
        path: str | os.PathLike,
        *,
        copy_towers: bool | None = None,
        model_state: dict[str, torch.Tensor] | None = None,
    ) -> Path:
        """Write model_index.json, the bridge checkpoint and, when they have no source (or `copy_towers`),
        the two tower pipelines. Towers loaded from a hub id or folder are saved as references to it.
        `model_state`: the BridgeDiT's full state dict when gathered elsewhere (sharded training)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        towers = {}
        for name, pipe, source in (
            ("video", self.video_pipe, self.video_source),
            ("audio", self.audio_pipe, self.audio_source),
        ):
            if copy_towers or (copy_towers is None and source is None):
                pipe.save_pretrained(folder / name, safe_serialization=True)
                towers[name] = name
            else:
                if source is None:
                    raise ConfigError(f"the {name} tower has no source to refer to; save it with copy_towers=True")
                towers[name] = source
        save_bridge(self.model, folder / "bridge", model_state)
        write_model_index(folder, **towers, generation_defaults=self.generation_defaults)
        return folder

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> BridgeDiTPipeline:
        self.video_pipe.to(device=device, dtype=dtype)  # the towers move with their pipelines
        self.audio_pipe.to(device=device, dtype=dtype)
        self.model.bridges.to(device=device, dtype=dtype)
        return self

    # ------------------------------------------------------------------------------------------------
    # Properties
    # ------------------------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the pipeline runs: its video transformer's device, or where its offloaded weights are brought."""
        return self.onload_device or self.video_pipe.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.video_pipe.transformer.dtype

    @property
    def sample_rate(self) -> int:
        return int(self.audio_pipe.vae.config.sampling_rate)

    @property
    def strides(self) -> CodecStrides:
        return CodecStrides.from_components(
            wan_vae_config=self.video_pipe.vae.config,
            wan_transformer_config=self.video_pipe.transformer.config,
            oobleck_config=self.audio_pipe.vae.config,
        )

    # ------------------------------------------------------------------------------------------------
    # Text
    # ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_prompts(
        self,
        video_prompts: list[str],
        audio_prompts: list[str],
        *,
        negative_video_prompt: str | list[str] | None = None,
        negative_audio_prompt: str | list[str] | None = None,
        audio_seconds: float,
        max_sequence_length: int = 512,
    ) -> PromptStates:
        """Each tower's own text encoding and null condition: Wan encodes the negative prompt (default "");
        Stable Audio uses zeros for its text-and-duration states unless a negative prompt is given."""
        device, batch = self.device, len(video_prompts)
        negative_video_prompt = _negatives(negative_video_prompt, batch, "negative_video_prompt")
        negative_audio_prompt = _negatives(negative_audio_prompt, batch, "negative_audio_prompt")
        video, null_video = self.video_pipe.encode_prompt(
            prompt=video_prompts,
            negative_prompt=negative_video_prompt,
            do_classifier_free_guidance=True,
            max_sequence_length=max_sequence_length,
            device=device,
        )
        has_audio_negative = negative_audio_prompt is not None
        audio_text = self.audio_pipe.encode_prompt(
            audio_prompts, device, do_classifier_free_guidance=has_audio_negative, negative_prompt=negative_audio_prompt
        )  # (2B, L, C) as (negative; prompt) when a negative prompt is given, else (B, L, C)
        dtype = self.dtype
        if has_audio_negative:
            audio = audio_conditions(self.audio_pipe, audio_text[batch:].to(dtype), audio_seconds)
            null_audio = audio_conditions(self.audio_pipe, audio_text[:batch].to(dtype), audio_seconds)
        else:
            audio = audio_conditions(self.audio_pipe, audio_text.to(dtype), audio_seconds)
            null_audio = null_audio_conditions(audio)
        return PromptStates(
            video=video_conditions(video.to(dtype)),
            audio=audio,
            null_video=video_conditions(null_video.to(dtype)),
            null_audio=null_audio,
        )

    def offload_text_encoders(self) -> None:
        """Move both text encoders to the CPU (frees accelerator memory once prompts are encoded)."""
        self.video_pipe.text_encoder.to("cpu")
        self.audio_pipe.text_encoder.to("cpu")

    # ------------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        video_prompt: str | list[str] | None = None,
        audio_prompt: str | list[str] | None = None,
        *,
        prompt: str | list[str] | None = None,
        negative_video_prompt: str | list[str] | None = None,
        negative_audio_prompt: str | list[str] | None = None,
        height: int = 480,
        width: int = 832,
        num_frames: int = 81,
        fps: float = 15.0,
        audio_seconds: float | None = None,
        num_inference_steps: int = 50,
        video_guidance: float = 6.0,
        audio_guidance: float = 7.0,
        schedule: str = "coupled",
        sampler: str = "euler",
        generator: torch.Generator | None = None,
        video_latents: torch.Tensor | None = None,
        audio_latents: torch.Tensor | None = None,
        given_video_latents: torch.Tensor | None = None,
        given_audio_latents: torch.Tensor | None = None,
        video: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
        audio: str | os.PathLike | np.ndarray | torch.Tensor | None = None,
        hold: str | None = None,
        output_type: str = "np",
        progress: bool = True,
        step_callback: StepCallback | None = None,
        max_sequence_length: int = 512,
        offload_text_encoders: bool = False,
        audio_length_rounding: str = "ceil",
        step_cache: float | None = None,
    ) -> BridgeDiTOutput:
        """Generate sounding videos. `prompt` alone is a shared caption for both towers (Table 3's T_V = T_A).

        `sampler` ("euler" or "heun") applies to the coupled schedule. Initial latents are unit Gaussian
        noise of shape (B, C, F', H', W') and (B, C_a, T); when `audio_latents` is given, its length sets
        the audio latent length, else `audio_length_rounding` ("ceil": the whole clip; "floor": whole latent
        frames, as the authors' release: 116 at 5.4 s). `max_sequence_length`: the UMT5 tokens Wan's text states
        are padded to (the release generates with 1,024 and trains with 512).

        Sound for a given video, video for a given sound: `video` (a file's path, frames (F, H, W, 3) uint8 at the
        model's frame rate, or normalised Wan latents (1, C, F', H', W')) or `audio` (a path, a waveform (samples,)
        or (channels, samples) at the model's rate, or Oobleck latents (1, C_a, T)) is not generated but held, and
        the other stream is sampled next to it through the bridges. Files and arrays are brought to the model's own
        size, rate and length by the code `prepare` uses (`media.read_given_video` ...) and encoded as the cache
        encodes. `given_video_latents` / `given_audio_latents` give latents directly (batched). `hold`:
        "clean" (noise level 0 throughout: for models trained with independent noise levels, like the demo model)
        or "renoised" (the given latents noised to each step's level from one fixed noise draw: replacement
        sampling, for models trained with coupled timesteps, like the paper's and the released ones); default: the
        model's own (`generation_defaults["hold"]`, which training records), else "clean". Initial noise is drawn
        for both streams as in joint generation, so a seed gives the generated stream the same starting noise
        either way. The given stream's guidance scale has no effect; it is returned as the model saw it.

        `step_callback(done, total)` runs after each sampling step (a progress bar's or a cancel button's hook); an
        exception raised in it stops sampling and leaves the call.

        `step_cache` (opt-in, e.g. 0.1): first-block caching across steps (`diffusion.step_cache`): a forward whose
        first blocks changed by less than this fraction since the last computed one reuses that one's other blocks;
        the output's `step_cache` counts the reused forwards. None (the default) computes every forward.
        """
        cache = None if step_cache is None else StepCache(step_cache)  # its threshold checked before any work
        if cache is not None and self.model.video_token_mesh is not None:
            raise ConfigError("the step cache does not combine with sequence parallel sampling")
        held = "video" if video is not None or given_video_latents is not None else None
        held = "audio" if audio is not None or given_audio_latents is not None else held
        video_prompts, audio_prompts = self._resolve_prompts(video_prompt, audio_prompt, prompt, held=held)
        clip = ClipSpec(
            height=height,
            width=width,
            num_frames=num_frames,
            fps=fps,
            audio_sample_rate=self.sample_rate,
            audio_seconds=audio_seconds,
            audio_length_rounding=audio_length_rounding,
        )
        lengths = SequenceLengths.compute(clip, self.strides)
        self.check_model_limits(clip)
        mesh = self.model.video_token_mesh
        if mesh is not None and lengths.video_tokens % mesh.size():
            raise ConfigError(
                f"sequence parallel sampling splits the {lengths.video_tokens} video tokens over {mesh.size()} "
                "processes: they must divide them (change the size or the frame count)"
            )
        self._check_call(num_inference_steps, schedule, sampler, output_type)
        holds_video = video is not None or given_video_latents is not None
        if holds_video and (audio is not None or given_audio_latents is not None):
            raise ConfigError("give a video or an audio to hold, not both: one stream is generated")
        if (video is not None and given_video_latents is not None) or (
            audio is not None and given_audio_latents is not None
        ):
            raise ConfigError("give a stream once: as `video` / `audio` or as given latents")
        if video is not None:
            given_video_latents = self.encode_given_video(video, clip)
        if audio is not None:
            given_audio_latents = self.encode_given_audio(audio, clip)
        hold = hold or self.generation_defaults.get("hold", "clean")
        if hold not in HOLD_MODES:
            raise ConfigError(f"hold={hold!r} is unknown; choose one of {', '.join(HOLD_MODES)}")
        batch, device = len(video_prompts), self.device
        if video is not None and given_video_latents.shape[0] == 1:  # one given clip for every prompt
            given_video_latents = given_video_latents.expand(batch, *given_video_latents.shape[1:])
        if audio is not None and given_audio_latents.shape[0] == 1:
            given_audio_latents = given_audio_latents.expand(batch, *given_audio_latents.shape[1:])

        states = self.encode_prompts(
            video_prompts,
            audio_prompts,
            negative_video_prompt=negative_video_prompt,
            negative_audio_prompt=negative_audio_prompt,
            audio_seconds=clip.seconds,
            max_sequence_length=max_sequence_length,
        )
        if offload_text_encoders:
            self.offload_text_encoders()

        video_shape = (
            batch,
            self.video_pipe.transformer.config.in_channels,
            lengths.latent_frames,
            lengths.latent_height,
            lengths.latent_width,
        )
        audio_shape = (batch, self.audio_pipe.transformer.config.in_channels, lengths.audio_latent_length)
        x_video = self._initial_latents(video_latents, video_shape, generator, "video_latents", check_length=True)
        x_audio = self._initial_latents(audio_latents, audio_shape, generator, "audio_latents", check_length=False)
        given_video = given_audio = None
        if given_video_latents is not None:
            given_video = self._initial_latents(
                given_video_latents, video_shape, None, "given_video_latents", check_length=True
            )
        if given_audio_latents is not None:  # its own length, like audio_latents'
            given_audio = self._initial_latents(
                given_audio_latents, audio_shape, None, "given_audio_latents", check_length=False
            )
            x_audio = given_audio.clone()  # the held stream's sampler state: never shown to the network
        held_noise = None  # replacement sampling's one fixed noise draw of the held stream
        if hold == "renoised" and (given_video is not None or given_audio is not None):
            held = given_video if given_video is not None else given_audio
            held_noise = randn_tensor(held.shape, generator=generator, device=device, dtype=torch.float32)

        # a given stream's own prediction is discarded, so its scale changes nothing: at a scale of 1 for the
        # generated stream, each step is then the conditional pass alone
        guided = GuidedDenoiser(
            self.model,
            states.video,
            states.audio,
            states.null_video,
            states.null_audio,
            video_scale=1.0 if given_video is not None else video_guidance,
            audio_scale=1.0 if given_audio is not None else audio_guidance,
            step_cache=cache,
        )
        dtype = self.dtype
        # bf16 attention as matrix products on a CPU (2x PyTorch's fused kernel there); other calls pass through
        attention = MatmulAttention() if device.type == "cpu" else nullcontext()

        def denoise(xv, xa, tv, ta):
            with attention:
                pred_video, pred_audio = guided(xv.to(dtype), xa.to(dtype), tv, ta)
            return pred_video.float(), pred_audio.float()

        if given_video is not None or given_audio is not None:
            denoise = hold_fixed(denoise, video=given_video, audio=given_audio, mode=hold, noise=held_noise)

        self.model.eval()
        if schedule == "native":
            x_video, x_audio = sample_native(
                denoise,
                x_video,
                x_audio,
                self.video_pipe.scheduler,
                self.audio_pipe.scheduler,
                num_inference_steps,
                generator=generator,
                progress=progress,
                step_callback=step_callback,
            )
        else:
            grid = coupled_grid(self.video_pipe.scheduler, num_inference_steps, device=device)
            x_video, x_audio = COUPLED_SAMPLERS[sampler](
                denoise, x_video, x_audio, grid, progress=progress, step_callback=step_callback
            )
        x_video = x_video if given_video is None else given_video
        x_audio = x_audio if given_audio is None else given_audio

        if cache is not None:
            logger.info("step cache: %d of %d forwards reused", cache.reused, cache.forwards)
        if output_type == "latent":
            return BridgeDiTOutput(
                video=x_video, audio=x_audio, fps=fps, sample_rate=self.sample_rate, step_cache=cache
            )
        return BridgeDiTOutput(
            video=self.decode_video(x_video, output_type),
            audio=self.decode_audio(x_audio, clip.seconds, output_type),
            fps=fps,
            sample_rate=self.sample_rate,
            step_cache=cache,
        )

    def model_limits(self) -> dict[str, float]:
        """The largest frame count, height and width this model's video tower can place (Wan's rotary table has
        `rope_max_seq_len` positions along each axis of its token grid), and the longest sound its audio tower can be
        told (Stable Audio's duration conditioning clamps seconds at its projection model's `max_value`)."""
        positions = self.video_pipe.transformer.config.rope_max_seq_len
        strides = self.strides
        patch_t, patch_h, patch_w = strides.video_patch
        return {
            "num_frames": (positions * patch_t - 1) * strides.video_temporal + 1,
            "height": positions * patch_h * strides.video_spatial,
            "width": positions * patch_w * strides.video_spatial,
            "audio_seconds": self.audio_pipe.projection_model.config.max_value,
        }

    def check_model_limits(self, clip: ClipSpec) -> None:
        """ConfigError naming the model's limit for a clip beyond what its positional table or duration conditioning
        holds."""
        for key, limit in self.model_limits().items():
            value = clip.seconds if key == "audio_seconds" else getattr(clip, key)
            if value > limit:
                name, held_by = LIMIT_NAMES[key]
                shown = f"{value:g}" if isinstance(value, float) else value
                raise ConfigError(f"{name} {shown} is beyond this model's limit of {limit:g} ({held_by})")

    def _given_standard(self, clip: ClipSpec, seconds: float) -> ClipStandard:
        return ClipStandard(
            seconds=seconds,
            fps=clip.fps,
            height=clip.height,
            width=clip.width,
            sample_rate=self.sample_rate,
            min_seconds=0.0,
        )

    def encode_given_video(self, video, clip: ClipSpec) -> torch.Tensor:
        """A given video as normalised Wan latents (1, C, F', H', W'): latents as they are; a file or frames brought to
        `clip`'s frame rate, size and frame count as `prepare` does, then encoded as the cache encodes."""
        if isinstance(video, torch.Tensor):
            if video.ndim != 5:
                raise ConfigError(f"video latents must be (1, C, F', H', W'); got shape {tuple(video.shape)}")
            return video
        from .data.cache import encode_video

        standard = self._given_standard(clip, clip.num_frames / clip.fps)
        if isinstance(video, np.ndarray):
            frames = standard_frames(video, standard)
        else:
            frames = read_given_video(video, standard)
        return encode_video(self, frames)[None]

    def encode_given_audio(self, audio, clip: ClipSpec) -> torch.Tensor:
        """A given sound as Oobleck latents (1, C_a, T): latents as they are; a file or a waveform made mono, resampled
        and cut to `clip`'s audio length as `prepare` does, then encoded as the cache encodes (T the model's length)."""
        if isinstance(audio, torch.Tensor):
            if audio.ndim != 3:
                raise ConfigError(f"audio latents must be (1, C_a, T); got shape {tuple(audio.shape)}")
            return audio
        from .data.cache import encode_audio

        standard = self._given_standard(clip, clip.seconds)
        waveform = (
            standard_audio(audio, standard) if isinstance(audio, np.ndarray) else read_given_audio(audio, standard)
        )
        latents = encode_audio(self, waveform[None])[None]  # (1, C_a, ceil(samples / hop))
        length = SequenceLengths.compute(clip, self.strides).audio_latent_length
        return latents[..., :length]

    def decode_video(self, latents: torch.Tensor, output_type: str = "np"):
        """Wan latents -> frames, as WanPipeline decodes them (de-normalise, VAE decode, post-process)."""
        vae = self.video_pipe.vae
        latents = latents.to(device=vae.device, dtype=vae.dtype)
        shape = (1, vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents)
        std = torch.tensor(vae.config.latents_std).view(shape).to(latents)
        video = vae.decode(latents * std + mean, return_dict=False)[0]
        if output_type == "pt":
            return self.video_pipe.video_processor.postprocess_video(video, output_type="pt")  # (B, F, 3, H, W)
        frames = self.video_pipe.video_processor.postprocess_video(video, output_type="np")  # (B, F, H, W, 3) in [0, 1]
        return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)

    def decode_audio(self, latents: torch.Tensor, seconds: float, output_type: str = "np"):
        """Oobleck latents -> stereo waveform cropped to `seconds`."""
        vae = self.audio_pipe.vae
        audio = vae.decode(latents.to(device=vae.device, dtype=vae.dtype)).sample  # (B, 2, samples)
        audio = audio[:, :, : round(seconds * self.sample_rate)]
        return audio.float().cpu().numpy() if output_type == "np" else audio

    # ------------------------------------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------------------------------------

    @staticmethod
    def _resolve_prompts(video_prompt, audio_prompt, prompt, *, held: str | None = None) -> tuple[list[str], list[str]]:
        shared = _as_list(prompt, "prompt")
        video, audio = _as_list(video_prompt, "video_prompt"), _as_list(audio_prompt, "audio_prompt")
        if shared is not None:
            if video is not None or audio is not None:
                raise ConfigError("give either `prompt` (shared by both towers) or video_prompt/audio_prompt, not both")
            video, audio = shared, shared
        if video is None or audio is None:
            raise ConfigError("give both video_prompt and audio_prompt, or one shared `prompt`")
        if len(video) != len(audio):
            raise ConfigError(f"got {len(video)} video prompt(s) but {len(audio)} audio prompt(s)")
        if not video:
            raise ConfigError("no prompts given")
        for name, prompts in (("video", video), ("audio", audio)):
            if name != held and any(not p.strip() for p in prompts):  # a held stream's caption may well be empty
                logger.warning("empty %s prompt: that %s is generated unconditionally", name, name)
        return video, audio

    @staticmethod
    def _check_call(num_inference_steps: int, schedule: str, sampler: str, output_type: str) -> None:
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ConfigError(f"num_inference_steps must be a positive integer; got {num_inference_steps!r}")
        if schedule not in SCHEDULES:
            raise ConfigError(f"schedule={schedule!r} is unknown; choose one of {', '.join(SCHEDULES)}")
        if sampler not in COUPLED_SAMPLERS:
            raise ConfigError(f"sampler={sampler!r} is unknown; choose one of {', '.join(COUPLED_SAMPLERS)}")
        if output_type not in OUTPUT_TYPES:
            raise ConfigError(f"output_type={output_type!r} is unknown; choose one of {', '.join(OUTPUT_TYPES)}")

    def _initial_latents(self, latents, shape, generator, name: str, *, check_length: bool) -> torch.Tensor:
        if latents is None:
            return randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)
        expected = shape if check_length else shape[:-1]
        got = tuple(latents.shape) if check_length else tuple(latents.shape[:-1])
        if got != expected:
            raise ConfigError(f"{name} has shape {tuple(latents.shape)}; expected {shape}")
        return latents.to(device=self.device, dtype=torch.float32)


# ----------------------------------------------------------------------------------------------------
# Loading helpers
# ----------------------------------------------------------------------------------------------------


def write_model_index(
    folder: Path,
    *,
    video: str,
    audio: str,
    generation_defaults: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """The folder's model_index.json: each tower a subfolder name, a hub id or a path; the bridge checkpoint's folder;
    the model's own generation defaults."""
    index: dict[str, Any] = {
        "_class_name": BridgeDiTPipeline.__name__,
        "_bridgedit_version": __version__,
        "bridge": "bridge",
        "video": video,
        "audio": audio,
    }
    if generation_defaults:
        index["generation_defaults"] = generation_defaults
    index.update(extra or {})
    write_text_atomic(folder / INDEX_NAME, json.dumps(index, indent=2))


def _pipeline_source(pipe) -> str | None:
    """The hub id or folder a diffusers pipeline was loaded from (None for one built in memory)."""
    source = getattr(pipe.config, "_name_or_path", None)
    return os.fspath(source) if source else None


def _resolve_folder(path_or_id: str | os.PathLike) -> Path:
    path = Path(path_or_id)
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is a file; a bridgedit model is a folder")
        return path
    if os.fspath(path_or_id).count("/") != 1:
        raise FileNotFoundError(f"no model folder at {path_or_id}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(os.fspath(path_or_id)))
    except Exception as error:  # offline, unknown repo, no access: say which and how to fix
        raise FileNotFoundError(
            f"cannot get {path_or_id}: not a local folder, and the hub download failed ({type(error).__name__}: {error}). "
            "Pass a local folder, or allow downloads (unset HF_HUB_OFFLINE)"
        ) from error


def _tower_reference(folder: Path, reference: str) -> tuple[str, str | None]:
    """A tower stored in the folder loads from there (and has no outside source); anything else is a hub id or path."""
    local = folder / reference
    if not os.path.isabs(reference) and local.is_dir():
        return str(local), None
    return reference, reference


def load_tower_pipeline(pipeline_class, reference: str, name: str, kwargs: dict | None = None):
    """A tower's diffusers pipeline from a folder or hub id; a one-line error naming the tower when it cannot load."""
    from safetensors import SafetensorError

    try:
        return pipeline_class.from_pretrained(reference, **(kwargs or {}))
    except SafetensorError as error:  # a truncated file, a damaged header: the library does not say which file
        raise CheckpointError(
            f"a weights file of the {name} tower in {reference!r} is damaged ({error}): copy or download it again"
        ) from None
    except OSError as error:
        raise FileNotFoundError(
            f"cannot load the {name} tower from {reference!r} ({error}). Give a local folder holding a saved "
            f"{pipeline_class.__name__}, or a hub id with downloads allowed (unset HF_HUB_OFFLINE)"
        ) from error
