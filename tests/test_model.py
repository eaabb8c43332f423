"""BridgeDiT: identity at initialisation, freezing policy, gradient flow and placement."""

import pytest
import torch
from conftest import AUDIO_BLOCKS, TOWER_DEPTH, VIDEO_BLOCKS, open_gates, tiny_bridgedit, tiny_inputs
from test_towers import _stable_audio_reference, _wan_reference

from bridgedit import tiny
from bridgedit.config import FUSION_KINDS, BridgeConfig, ConfigError, ModelConfig
from bridgedit.model import BridgeDiT


def _forward(model, inputs):
    return model(**inputs)


@pytest.mark.parametrize("fusion", FUSION_KINDS)
@pytest.mark.parametrize("width", [256, 16])  # equal to the video tower's width, and narrower (adapters)
def test_untrained_model_equals_separate_towers_exactly(fusion, width):
    model = tiny_bridgedit(fusion, width=width).eval()
    inputs = tiny_inputs(batch_size=2)
    with torch.no_grad():
        video, audio = _forward(model, inputs)
        assert torch.equal(video, _wan_reference(model.video_tower.transformer, inputs))
        assert torch.equal(audio, _stable_audio_reference(model.audio_tower.transformer, inputs))


@pytest.mark.parametrize("fusion", [f for f in FUSION_KINDS if f != "none"])
def test_trained_bridges_change_both_outputs(fusion):
    """The identity test above is not vacuous: once gates open, the streams interact."""
    model = tiny_bridgedit(fusion).eval()
    open_gates(model)
    inputs = tiny_inputs(batch_size=2)
    with torch.no_grad():
        video, audio = _forward(model, inputs)
        assert not torch.allclose(video, _wan_reference(model.video_tower.transformer, inputs))
        assert not torch.allclose(audio, _stable_audio_reference(model.audio_tower.transformer, inputs))


def _trainable_names(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_default_policy_trains_bridges_and_last_blocks_only():
    model = tiny_bridgedit("dca")
    expected = {f"video_tower.blocks.{i}" for i in (4, 5)} | {f"audio_tower.blocks.{i}" for i in (4, 5)} | {"bridges"}
    assert set(model.trainable_modules()) == expected
    for name, param in model.named_parameters():
        in_trained_block = any(f".{attr}.{i}." in name for attr in ("blocks", "transformer_blocks") for i in (4, 5))
        assert param.requires_grad == (name.startswith("bridges.") or in_trained_block), name


def test_other_policies():
    bridges_only = tiny_bridgedit("dca", policy="bridges")
    assert _trainable_names(bridges_only) == {n for n, _ in bridges_only.bridges.named_parameters(prefix="bridges")}
    towers = tiny_bridgedit("dca", policy="towers")
    # everything, except what diffusers itself creates frozen: Stable Audio's random Fourier time features
    fourier = towers.audio_tower.transformer.time_proj.weight
    assert not fourier.requires_grad
    assert all(p.requires_grad for p in towers.parameters() if p is not fourier)


def test_frozen_modules_stay_in_eval_mode():
    model = tiny_bridgedit("dca").train()
    video_blocks, audio_blocks = model.video_tower.blocks, model.audio_tower.blocks
    assert model.training and model.bridges.training
    assert [b.training for b in video_blocks] == [False] * 4 + [True] * 2
    assert [b.training for b in audio_blocks] == [False] * 4 + [True] * 2
    assert not model.video_tower.transformer.patch_embedding.training
    model.eval()
    assert not any(m.training for m in model.modules())


def test_training_step_updates_only_trainable_parameters():
    model = tiny_bridgedit("dca").train()
    inputs = tiny_inputs(batch_size=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # the second step also moves weights behind the (then non-zero) gates
        optimizer.zero_grad()
        video, audio = _forward(model, inputs)
        (video.square().mean() + audio.square().mean()).backward()
        for name, param in model.named_parameters():
            assert (param.grad is not None) == param.requires_grad, name
        optimizer.step()
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], param)
        assert changed == param.requires_grad, name


def test_no_autograd_graph_before_the_first_trainable_module():
    model = tiny_bridgedit("dca").train()  # first trainable module: bridge 0, after video block 1 / audio block 0
    records = {}
    for tower_name, tower in (("video", model.video_tower), ("audio", model.audio_tower)):
        for index, block in enumerate(tower.blocks):
            block.register_forward_hook(
                lambda module, args, output, key=(tower_name, index): records.__setitem__(key, output.requires_grad)
            )
    video, _ = _forward(model, tiny_inputs(batch_size=1))
    assert video.requires_grad
    first_video, first_audio = VIDEO_BLOCKS[0], AUDIO_BLOCKS[0]
    assert [records["video", i] for i in range(TOWER_DEPTH)] == [i > first_video for i in range(TOWER_DEPTH)]
    assert [records["audio", i] for i in range(TOWER_DEPTH)] == [i > first_audio for i in range(TOWER_DEPTH)]

    with torch.no_grad():  # and nothing at all under no_grad
        video, audio = _forward(model, tiny_inputs(batch_size=1))
    assert not video.requires_grad and not any(records.values())


def test_gradient_checkpointing_gives_the_same_outputs_and_gradients():
    inputs = tiny_inputs(batch_size=2)
    results = []
    for checkpointing in (False, True):
        model = tiny_bridgedit("dca").train()
        open_gates(model)
        if checkpointing:
            model.enable_gradient_checkpointing()
        video, audio = _forward(model, inputs)
        (video.square().mean() + audio.square().mean()).backward()
        results.append(
            (video.detach(), audio.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad})
        )
    (v0, a0, g0), (v1, a1, g1) = results
    assert torch.equal(v0, v1) and torch.equal(a0, a1)
    for name in g0:
        torch.testing.assert_close(g0[name], g1[name], atol=1e-6, rtol=1e-5)


def test_each_sample_uses_its_own_pair_of_timesteps():
    model = tiny_bridgedit("dca").eval()
    open_gates(model)
    inputs = tiny_inputs(batch_size=2)
    with torch.no_grad():
        video, audio = _forward(model, inputs)
        for i in range(2):
            single = tiny_inputs(batch_size=2)
            single = {
                "video_latents": inputs["video_latents"][i : i + 1],
                "audio_latents": inputs["audio_latents"][i : i + 1],
                "t_video": inputs["t_video"][i : i + 1],
                "t_audio": inputs["t_audio"][i : i + 1],
                "video_conditions": type(inputs["video_conditions"])(inputs["video_conditions"].text_states[i : i + 1]),
                "audio_conditions": type(inputs["audio_conditions"])(
                    inputs["audio_conditions"].text_states[i : i + 1],
                    inputs["audio_conditions"].global_states[i : i + 1],
                ),
            }
            v, a = _forward(model, single)
            torch.testing.assert_close(video[i : i + 1], v, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(audio[i : i + 1], a, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "video_blocks, audio_blocks, message",
    [
        ((1, 6), (0, 2), r"video_blocks=\[1, 6\] points past the tower, which has 6 blocks"),
        ((1, 3), (0, 9), r"audio_blocks=\[0, 9\] points past the tower"),
    ],
)
def test_placement_past_the_tower_is_a_clear_error(video_blocks, audio_blocks, message):
    config = ModelConfig(
        bridge=BridgeConfig(video_blocks=video_blocks, audio_blocks=audio_blocks, width=24, num_heads=2)
    )
    with pytest.raises(ConfigError, match=message):
        BridgeDiT(tiny.wan_transformer(num_layers=6), tiny.stable_audio_transformer(num_layers=6), config)
