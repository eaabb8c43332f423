"""Joint samplers: plain functions over a denoiser `fn(x_video, x_audio, t_video, t_audio) -> (v_video, v_audio)`.

`fn` returns each tower's own prediction: Wan's flow velocity (eps - x_0) and Stable Audio's v
(alpha eps - sigma x_0). Timesteps are (B,) tensors on each tower's scale (t_V in 0..1000, t_A in 0..1).

Two schedules:
- coupled (`sample_euler`, `sample_heun`): one grid s_0 = 1 > s_1 > ... > s_N = 0 with t_V = 1000 s and
  t_A = s at every step, the pairs the bridges are trained on (§3.1). The default grid is the video
  tower's own shifted flow grid (`coupled_grid`).
- native (`sample_native`): each tower's own diffusers scheduler, stepping in lockstep; without bridges
  it reproduces WanPipeline and StableAudioPipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from ..config import HOLD_MODES
from .objectives import VIDEO_TIMESTEP_SCALE, noise_audio, noise_video

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def coupled_grid(video_scheduler, num_steps: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The video scheduler's own noise levels for `num_steps` steps (e.g. Wan's shift-3 flow sigmas), ending at 0."""
    video_scheduler.set_timesteps(num_steps, device=device)
    sigmas = video_scheduler.sigmas.to(device=device, dtype=torch.float32)
    if sigmas.shape != (num_steps + 1,) or float(sigmas[-1]) != 0.0:
        raise ValueError(
            f"{type(video_scheduler).__name__} does not give {num_steps} flow sigmas ending at 0; "
            "the coupled schedule needs a flow-matching video scheduler (final_sigmas_type='zero')"
        )
    return sigmas


def _timesteps(s: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    t_audio = s.expand(batch_size)
    return VIDEO_TIMESTEP_SCALE * t_audio, t_audio


def _angle(s: torch.Tensor) -> torch.Tensor:
    return s * (math.pi / 2)


def _ddim_audio(x: torch.Tensor, v: torch.Tensor, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
    """DDIM (Song et al., 2021) for v-prediction on the cosine schedule: a rotation by the angle step.

    With x = cos(phi) x0 + sin(phi) eps and v = cos(phi) eps - sin(phi) x0, the point at phi' for the same
    (x0, eps) is cos(phi' - phi) x + sin(phi' - phi) v.
    """
    delta = _angle(s_next) - _angle(s)
    return torch.cos(delta) * x + torch.sin(delta) * v


#: called after each sampling step with (steps done, steps in all); an exception raised in it stops sampling
StepCallback = Callable[[int, int], None]


def _steps(num_steps: int, progress: bool, step_callback: StepCallback | None = None):
    """The step indices 0..num_steps-1, with a tqdm bar when `progress`; `step_callback(i + 1, num_steps)` runs once
    step i's body has run (the caller's loop body runs between two yields)."""
    for index in tqdm(range(num_steps), disable=not progress, desc="sampling", leave=False):
        yield index
        if step_callback is not None:
            step_callback(index + 1, num_steps)


@torch.no_grad()
def sample_euler(
    fn: Denoiser,
    x_video: torch.Tensor,
    x_audio: torch.Tensor,
    grid: torch.Tensor,
    *,
    progress: bool = False,
    step_callback: StepCallback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """First order on the coupled grid: Euler for the video flow (Lipman et al., 2022), DDIM for the audio.

    Both are exact when the predictions correspond to a fixed (x0, eps) pair, e.g. a one-point data set.
    """
    batch_size = x_video.shape[0]
    for i in _steps(len(grid) - 1, progress, step_callback):
        s, s_next = grid[i], grid[i + 1]
        v_video, v_audio = fn(x_video, x_audio, *_timesteps(s, batch_size))
        x_video = x_video + (s_next - s) * v_video
        x_audio = _ddim_audio(x_audio, v_audio, s, s_next)
    return x_video, x_audio


@torch.no_grad()
def sample_heun(
    fn: Denoiser,
    x_video: torch.Tensor,
    x_audio: torch.Tensor,
    grid: torch.Tensor,
    *,
    progress: bool = False,
    step_callback: StepCallback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Second order on the coupled grid (Karras et al., 2022, Alg. 1), two joint evaluations per step.

    Video: Heun on dx/ds = v. Audio: the second-order exponential integrator of DPM-Solver++ (Lu et al.,
    2022) on the data-prediction ODE d(x / sigma) / d lambda = e^lambda x0, lambda = log(alpha / sigma),
    with x0 linear in lambda between the two evaluations; its first-order part is DDIM, so it stays exact
    on one-point data. The last step (to s = 0) is first order, as in Karras et al.
    """
    batch_size = x_video.shape[0]
    for i in _steps(len(grid) - 1, progress, step_callback):
        s, s_next = grid[i], grid[i + 1]
        v_video, v_audio = fn(x_video, x_audio, *_timesteps(s, batch_size))
        video_euler = x_video + (s_next - s) * v_video
        audio_ddim = _ddim_audio(x_audio, v_audio, s, s_next)
        if float(s_next) == 0.0:
            x_video, x_audio = video_euler, audio_ddim
            continue
        v_video_next, v_audio_next = fn(video_euler, audio_ddim, *_timesteps(s_next, batch_size))
        x_video = x_video + (s_next - s) * (v_video + v_video_next) / 2

        x_audio = _audio_second_order(x_audio, v_audio, audio_ddim, v_audio_next, s, s_next)
    return x_video, x_audio


def _audio_second_order(x, v, x_next_guess, v_next, s, s_next) -> torch.Tensor:
    """One DPM-Solver++-style step with the data prediction x0 linear in lambda = log(alpha / sigma).

    In z = x / sigma and r = alpha / sigma = e^lambda: z' = z + int e^lambda x0(lambda) dlambda, where
    x0 runs linearly from d1 (at x, s) to d2 (at the first-order guess, s'); h = lambda' - lambda.
    """
    phi, phi_next = _angle(s), _angle(s_next)
    d1 = torch.cos(phi) * x - torch.sin(phi) * v
    d2 = torch.cos(phi_next) * x_next_guess - torch.sin(phi_next) * v_next
    r, r_next = torch.cos(phi) / torch.sin(phi), torch.cos(phi_next) / torch.sin(phi_next)
    if float(r) <= 0.0:  # alpha = 0 (pure noise): the limit lambda -> -inf of the integral is r' d2
        increment = r_next * d2
    else:
        h = torch.log(r_next) - torch.log(r)
        increment = (r_next - r) * d1 + r * ((h - 1) * torch.exp(h) + 1) / h * (d2 - d1)
    return torch.sin(phi_next) * (x / torch.sin(phi) + increment)


def hold_fixed(
    fn: Denoiser,
    *,
    video: torch.Tensor | None = None,
    audio: torch.Tensor | None = None,
    mode: str = "clean",
    noise: torch.Tensor | None = None,
) -> Denoiser:
    """A denoiser for generating one stream next to a given other stream (video-to-audio or audio-to-video).

    The held stream's latents (`video` (B, C, F', H', W') or `audio` (B, C_a, T)) replace whatever the sampler passes
    for it, and its prediction is returned as zeros: any sampler runs unchanged, and the held stream's sampled output
    is to be replaced by the given latents afterwards (its values during sampling are never shown to the network).

    - "clean": the given latents at noise level 0 (t_V = 0, t_A = 0) at every step: in distribution for models
      trained with each stream's noise level drawn on its own (the demo model).
    - "renoised" (replacement sampling): the given latents noised to the current step's level with one fixed `noise`
      draw (Eq. 5 and 6 forward processes), at the step's own timestep: what a model trained with coupled timesteps
      has seen (the paper's, the authors' release).
    """
    if (video is None) == (audio is None):
        raise ValueError("hold exactly one stream fixed: give `video` or `audio`")
    if mode not in HOLD_MODES:
        raise ValueError(f"hold mode {mode!r} is unknown; choose one of {', '.join(HOLD_MODES)}")
    held = video if video is not None else audio
    if mode == "renoised" and (noise is None or noise.shape != held.shape):
        raise ValueError("the renoised hold needs one noise draw of the held stream's shape")

    def held_video(x_video, t_video):
        if mode == "clean":
            return video.to(x_video), torch.zeros_like(t_video)
        return noise_video(video.to(x_video), noise.to(x_video), t_video), t_video

    def held_audio(x_audio, t_audio):
        if mode == "clean":
            return audio.to(x_audio), torch.zeros_like(t_audio)
        return noise_audio(audio.to(x_audio), noise.to(x_audio), t_audio), t_audio

    def denoise(x_video, x_audio, t_video, t_audio):
        if video is not None:
            given, t_given = held_video(x_video, t_video)
            _, v_audio = fn(given, x_audio, t_given, t_audio)
            return torch.zeros_like(x_video), v_audio
        given, t_given = held_audio(x_audio, t_audio)
        v_video, _ = fn(x_video, given, t_video, t_given)
        return v_video, torch.zeros_like(x_audio)

    return denoise


COUPLED_SAMPLERS: dict[str, Callable[..., tuple[torch.Tensor, torch.Tensor]]] = {
    "euler": sample_euler,
    "heun": sample_heun,
}


@torch.no_grad()
def sample_native(
    fn: Denoiser,
    x_video: torch.Tensor,
    x_audio: torch.Tensor,
    video_scheduler,
    audio_scheduler,
    num_steps: int,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
    step_callback: StepCallback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each tower's own diffusers scheduler in lockstep, as WanPipeline and StableAudioPipeline step them.

    `x_audio` is unit-variance noise; it is scaled by the audio scheduler's `init_noise_sigma` here, as
    StableAudioPipeline does. The audio scheduler may be stochastic (Stable Audio's SDE solver); its
    noise comes from `generator`'s seed, as in StableAudioPipeline.
    """
    device = x_video.device
    video_scheduler.set_timesteps(num_steps, device=device)
    audio_scheduler.set_timesteps(num_steps, device=device)
    if len(video_scheduler.timesteps) != len(audio_scheduler.timesteps):
        raise ValueError(
            f"the native schedule needs one timestep per step from both schedulers; got "
            f"{len(video_scheduler.timesteps)} video and {len(audio_scheduler.timesteps)} audio timesteps"
        )
    if hasattr(video_scheduler, "set_begin_index"):
        video_scheduler.set_begin_index(0)
    x_audio = x_audio * audio_scheduler.init_noise_sigma
    audio_step_kwargs = {"generator": generator} if generator is not None else {}
    batch_size = x_video.shape[0]
    for i in _steps(num_steps, progress, step_callback):
        t_video, t_audio = video_scheduler.timesteps[i], audio_scheduler.timesteps[i]
        audio_input = audio_scheduler.scale_model_input(x_audio, t_audio)
        v_video, v_audio = fn(x_video, audio_input, t_video.expand(batch_size), t_audio.expand(batch_size))
        x_video = video_scheduler.step(v_video, t_video, x_video, return_dict=False)[0]
        x_audio = audio_scheduler.step(v_audio, t_audio, x_audio, **audio_step_kwargs, return_dict=False)[0]
    return x_video, x_audio
