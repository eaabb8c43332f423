"""Joint samplers on toy data whose exact denoiser and exact ODE solution are known in closed form."""

import math

import pytest
import torch

from bridgedit import tiny
from bridgedit.diffusion import coupled_grid, sample_euler, sample_heun, sample_native
from bridgedit.diffusion.objectives import audio_alpha_sigma, audio_target, noise_audio, noise_video, video_target

MU, TAU = 0.3, 0.5  # data x0 ~ N(MU, TAU^2) per coordinate


def gaussian_denoiser(tau):
    """The exact (posterior-mean) predictions of both towers for Gaussian data N(MU, tau^2)."""

    def fn(x_video, x_audio, t_video, t_audio):
        s = (t_video / 1000).reshape(-1, *[1] * (x_video.ndim - 1)).double()
        var = (1 - s) ** 2 * tau**2 + s**2
        centred = x_video - (1 - s) * MU
        velocity = s * centred / var - (MU + (1 - s) * tau**2 * centred / var)  # E[eps|x] - E[x0|x]

        alpha, sigma = audio_alpha_sigma(t_audio.reshape(-1, *[1] * (x_audio.ndim - 1)).double())
        var_a = alpha**2 * tau**2 + sigma**2
        centred_a = x_audio - alpha * MU
        v = alpha * (sigma * centred_a / var_a) - sigma * (MU + alpha * tau**2 * centred_a / var_a)
        return velocity, v

    return fn


def exact_endpoint(noise, tau):
    # the probability-flow ODE keeps (x - mean_s) / std_s fixed; at s = 1 that is the noise itself
    return MU + tau * noise


def _noise():
    g = torch.Generator().manual_seed(0)
    return torch.randn(3, 4, 2, 2, 2, generator=g, dtype=torch.float64), torch.randn(
        3, 2, 5, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun])
def test_exact_on_a_one_point_data_set(sampler):
    """A single data point makes every trajectory a straight flow line / a DDIM arc: the solvers are exact."""
    x_video, x_audio = _noise()
    grid = coupled_grid(tiny.wan_scheduler(), 4).double()
    video, audio = sampler(gaussian_denoiser(tau=0.0), x_video, x_audio, grid)
    torch.testing.assert_close(video, torch.full_like(video, MU), atol=1e-9, rtol=0)
    torch.testing.assert_close(audio, torch.full_like(audio, MU), atol=1e-9, rtol=0)


def _errors(sampler, steps):
    x_video, x_audio = _noise()
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    video, audio = sampler(gaussian_denoiser(TAU), x_video, x_audio, grid)
    return (
        (video - exact_endpoint(x_video, TAU)).abs().max().item(),
        (audio - exact_endpoint(x_audio, TAU)).abs().max().item(),
    )


def _observed_orders(sampler, steps):
    coarse, fine = _errors(sampler, steps), _errors(sampler, 2 * steps)
    return [math.log2(c / f) for c, f in zip(coarse, fine)]


def test_euler_is_first_order():
    video, audio = _observed_orders(sample_euler, 32)
    assert video == pytest.approx(1, abs=0.15) and audio == pytest.approx(1, abs=0.15)


def test_heun_is_second_order():
    video, audio = _observed_orders(sample_heun, 32)
    assert video == pytest.approx(2, abs=0.15)
    # audio: the data-prediction variable is singular at s = 0, so the order approaches 2 from below
    # (measured 1.67 at 32 -> 64 steps, 1.79 at 256 -> 512); it grows with the step count
    assert 1.5 < audio < 2.1
    assert _observed_orders(sample_heun, 128)[1] > audio


def test_heun_pays_at_equal_evaluations():
    """Heun with N steps costs about 2N evaluations; it still beats Euler with 2N steps."""
    euler, heun = _errors(sample_euler, 32), _errors(sample_heun, 16)
    assert heun[0] < euler[0] and heun[1] < euler[1]


def test_coupled_grid_is_wans_shifted_flow_grid():
    grid = coupled_grid(tiny.wan_scheduler(), 10)
    shift = 3.0
    base = torch.linspace(1.0, 1 / 1000, 11)[:-1].double()
    expected = torch.cat([shift * base / (1 + (shift - 1) * base), torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(grid.double(), expected, atol=1e-5, rtol=0)  # float32 grid


def test_objectives_are_eq_5_and_6():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    t_audio = torch.tensor([0.25, 0.9])
    a, s = torch.cos(t_audio * math.pi / 2)[:, None], torch.sin(t_audio * math.pi / 2)[:, None]
    torch.testing.assert_close(noise_audio(x0, eps, t_audio), a * x0 + s * eps)
    torch.testing.assert_close(audio_target(x0, eps, t_audio), a * eps - s * x0)
    t_video = 1000 * t_audio
    torch.testing.assert_close(noise_video(x0, eps, t_video), (1 - t_audio[:, None]) * x0 + t_audio[:, None] * eps)
    torch.testing.assert_close(video_target(x0, eps), eps - x0)


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun, "native"])
def test_the_step_callback_runs_after_every_step_and_an_error_in_it_stops_sampling(sampler):
    x_video, x_audio = _noise()
    evaluations, seen = [], []

    def fn(x_video, x_audio, t_video, t_audio):
        evaluations.append(float(t_video[0]))
        return torch.zeros_like(x_video), torch.zeros_like(x_audio)

    schedulers = (
        tiny.bridgedit_pipeline(seed=0).video_pipe.scheduler,
        tiny.bridgedit_pipeline(seed=0).audio_pipe.scheduler,
    )

    def run(step_callback):
        if sampler == "native":
            return sample_native(fn, x_video, x_audio, *schedulers, 5, step_callback=step_callback)
        return sampler(fn, x_video, x_audio, coupled_grid(schedulers[0], 5), step_callback=step_callback)

    run(lambda done, total: seen.append((done, total, len(evaluations))))
    per_step = 1 if sampler is sample_euler or sampler == "native" else 2  # Heun: two evaluations (one on the last)
    assert [(done, total) for done, total, _ in seen] == [(i, 5) for i in range(1, 6)]
    assert seen[0][2] == per_step  # each call comes after its step's evaluations, before the next step's

    class Stop(Exception):
        pass

    def stop_after_two(done, total):
        if done == 2:
            raise Stop

    evaluations.clear()
    with pytest.raises(Stop):
        run(stop_after_two)
    assert len(evaluations) == 2 * per_step  # the third step never ran
