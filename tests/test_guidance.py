"""Per-modality classifier-free guidance (Eq. 11-12), batched into one joint forward."""

import torch
from conftest import open_gates, tiny_bridgedit, tiny_inputs

from bridgedit.diffusion import GuidedDenoiser, concat_conditions
from bridgedit.towers import AudioConditions, VideoConditions


def _setup():
    model = tiny_bridgedit("dca").eval()
    open_gates(model)
    cond, null = tiny_inputs(batch_size=2, seed=0), tiny_inputs(batch_size=2, seed=1)
    return model, cond, null


def _guided(model, cond, null, video_scale, audio_scale):
    return GuidedDenoiser(
        model,
        cond["video_conditions"],
        cond["audio_conditions"],
        null["video_conditions"],
        null["audio_conditions"],
        video_scale=video_scale,
        audio_scale=audio_scale,
    )


def _args(inputs):
    return inputs["video_latents"], inputs["audio_latents"], inputs["t_video"], inputs["t_audio"]


def _separate_passes(model, cond, null):
    with torch.no_grad():
        conditional = model(*_args(cond), cond["video_conditions"], cond["audio_conditions"])
        unconditional = model(*_args(cond), null["video_conditions"], null["audio_conditions"])
    return conditional, unconditional


def test_eq_11_and_12_with_separate_scales():
    model, cond, null = _setup()
    (cond_v, cond_a), (null_v, null_a) = _separate_passes(model, cond, null)
    with torch.no_grad():
        video, audio = _guided(model, cond, null, 6.0, 3.0)(*_args(cond))
    # the batched forward rounds differently from the separate passes (another batch size, another kernel split), and
    # s * cond - (s - 1) * null amplifies that rounding up to 2s - 1 times: the tolerance grows with the scale
    torch.testing.assert_close(video, null_v + 6.0 * (cond_v - null_v), atol=6.0 * 1e-5, rtol=1e-5)
    torch.testing.assert_close(audio, null_a + 3.0 * (cond_a - null_a), atol=3.0 * 1e-5, rtol=1e-5)


def test_scale_one_equals_the_conditional_pass():
    model, cond, null = _setup()
    (cond_v, cond_a), (null_v, _) = _separate_passes(model, cond, null)
    with torch.no_grad():
        # video unguided while audio is guided: the batched forward still runs, video must equal its conditional pass
        video, _ = _guided(model, cond, null, 1.0, 4.0)(*_args(cond))
        both_one = _guided(model, cond, null, 1.0, 1.0)
        video_only, audio_only = both_one(*_args(cond))
    torch.testing.assert_close(video, cond_v, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cond_v, null_v)  # the null condition does matter here
    assert not both_one.guided
    assert torch.equal(video_only, cond_v) and torch.equal(audio_only, cond_a)


def test_conditions_are_concatenated_once():
    model, cond, null = _setup()
    guided = _guided(model, cond, null, 2.0, 2.0)
    calls = []
    original = model.forward
    model.forward = lambda *a, **k: calls.append(a[4]) or original(*a, **k)
    with torch.no_grad():
        guided(*_args(cond))
        guided(*_args(cond))
    assert calls[0] is calls[1]  # the same (null; cond) conditions object at every step
    assert calls[0].text_states.shape[0] == 4


def test_concat_conditions_keeps_none():
    a = AudioConditions(torch.zeros(1, 2, 3), torch.zeros(1, 1, 6), None)
    both = concat_conditions(a, a)
    assert both.text_states.shape == (2, 2, 3) and both.text_mask is None
    assert concat_conditions(
        VideoConditions(torch.ones(1, 2)), VideoConditions(torch.zeros(3, 2))
    ).text_states.shape == (4, 2)
