"""The lockstep protocol equals each diffusers model's own forward(), bit for bit."""

import pytest
import torch
from conftest import tiny_inputs
from diffusers.models.embeddings import get_1d_rotary_pos_embed

from bridgedit import tiny
from bridgedit.towers import StableAudioTower, WanVideoTower


def _wan_reference(transformer, inputs):
    return transformer(
        inputs["video_latents"], inputs["t_video"], inputs["video_conditions"].text_states, return_dict=False
    )[0]


def _stable_audio_reference(transformer, inputs):
    conditions = inputs["audio_conditions"]
    # the rotary embedding exactly as StableAudioPipeline builds it: over the global token + T audio tokens
    rotary = get_1d_rotary_pos_embed(
        transformer.config.attention_head_dim // 2,
        inputs["audio_latents"].shape[2] + 1,
        use_real=True,
        repeat_interleave_real=False,
    )
    return transformer(
        inputs["audio_latents"],
        inputs["t_audio"],
        encoder_hidden_states=conditions.text_states,
        global_hidden_states=conditions.global_states,
        rotary_embedding=rotary,
        return_dict=False,
    )[0]


CASES = {
    "wan": (lambda: WanVideoTower(tiny.wan_transformer(num_layers=3)), _wan_reference, "video"),
    "stable_audio": (
        lambda: StableAudioTower(tiny.stable_audio_transformer(num_layers=3)),
        _stable_audio_reference,
        "audio",
    ),
}


def _tower_call(tower, inputs, modality):
    return tower(inputs[f"{modality}_latents"], inputs[f"t_{modality}"], inputs[f"{modality}_conditions"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_lockstep_equals_forward_in_eval(name):
    make_tower, reference, modality = CASES[name]
    tower = make_tower().eval()
    inputs = tiny_inputs(batch_size=3)
    with torch.no_grad():
        ours = _tower_call(tower, inputs, modality)
        theirs = reference(tower.transformer, inputs)
    assert ours.shape == inputs[f"{modality}_latents"].shape
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_lockstep_equals_forward_with_gradient_checkpointing(name):
    make_tower, reference, modality = CASES[name]
    tower = make_tower().train()
    tower.transformer.enable_gradient_checkpointing()
    calls = []
    original = tower.transformer._gradient_checkpointing_func
    tower.transformer._gradient_checkpointing_func = lambda *a, **k: calls.append(1) or original(*a, **k)
    inputs = tiny_inputs(batch_size=2)
    params = [p for p in tower.transformer.parameters() if p.requires_grad]

    ours = _tower_call(tower, inputs, modality)
    ours_grads = torch.autograd.grad(ours.square().sum(), params, allow_unused=True)
    assert len(calls) == tower.num_blocks  # every block went through checkpointing
    theirs = reference(tower.transformer, inputs)
    theirs_grads = torch.autograd.grad(theirs.square().sum(), params, allow_unused=True)

    assert torch.equal(ours, theirs)
    for a, b in zip(ours_grads, theirs_grads):
        assert (a is None and b is None) or torch.equal(a, b)


def test_per_sample_timesteps_are_independent():
    """Each sample of a batch is denoised at its own timestep: batched equals one-by-one."""
    tower = WanVideoTower(tiny.wan_transformer(num_layers=2)).eval()
    inputs = tiny_inputs(batch_size=2)
    with torch.no_grad():
        batched = _tower_call(tower, inputs, "video")
        for i in range(2):
            single = {
                "video_latents": inputs["video_latents"][i : i + 1],
                "t_video": inputs["t_video"][i : i + 1],
                "video_conditions": type(inputs["video_conditions"])(inputs["video_conditions"].text_states[i : i + 1]),
            }
            torch.testing.assert_close(batched[i : i + 1], _tower_call(tower, single, "video"), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(batched[0], batched[1])


def test_audio_tower_keeps_global_token_out_of_the_bridge_tokens():
    tower = StableAudioTower(tiny.stable_audio_transformer(num_layers=1))
    inputs = tiny_inputs(batch_size=1)
    with torch.no_grad():
        state = tower.prepare(inputs["audio_latents"], inputs["t_audio"], inputs["audio_conditions"])
    assert state.hidden_states.shape[1] == 10 + 1
    assert state.bridge_tokens.shape[1] == 10
    assert torch.equal(state.bridge_tokens, state.hidden_states[:, 1:])


def test_rejects_2d_timesteps():
    tower = WanVideoTower(tiny.wan_transformer(num_layers=1))
    inputs = tiny_inputs(batch_size=1)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        tower.prepare(inputs["video_latents"], inputs["t_video"][:, None], inputs["video_conditions"])
