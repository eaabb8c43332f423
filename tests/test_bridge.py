"""Bridge blocks against the paper's equations (7-10), written out by hand with plain matmuls and softmax."""

import math

import pytest
import torch
import torch.nn.functional as F

from bridgedit.bridge import FUSIONS, BridgeStack, space_encoding, time_encoding, token_times
from bridgedit.config import FUSION_KINDS, BridgeConfig, ConfigError

WIDTH, HEADS, COND = 16, 2, 8
GRID = (3, 2, 2)  # video tokens: 3 latent frames x 2 x 2
NV, NA = 12, 5


def _stack(
    fusion, *, video_width=WIDTH, audio_width=WIDTH, seed=0, time_encoding=False, time_bias=0.0, space_encoding=False
):
    torch.manual_seed(seed)
    config = BridgeConfig(
        fusion=fusion,
        video_blocks=(0,),
        audio_blocks=(0,),
        width=WIDTH,
        num_heads=HEADS,
        timestep_embed_dim=COND,
        time_encoding=time_encoding,
        time_bias=time_bias,
        space_encoding=space_encoding,
    )
    stack = BridgeStack(config, video_width=video_width, audio_width=audio_width)
    with torch.no_grad():  # non-zero modulation so every term of the block is exercised
        for stream in (stack.blocks[0].video, stack.blocks[0].audio):
            stream.modulation.linear.weight.normal_(0, 0.3)
            stream.modulation.linear.bias.normal_(0, 0.3)
    return stack


def _tokens(seed=1, video_width=WIDTH, audio_width=WIDTH):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(2, NV, video_width, generator=g),
        torch.randn(2, NA, audio_width, generator=g),
        torch.randn(2, COND, generator=g),
    )


def _linear(x, layer):
    return x @ layer.weight.T + (layer.bias if layer.bias is not None else 0)


def _mods(stream, condition):
    # adaLN: shift, scale, gate for the attention step, then for the MLP step; each (B, 1, D)
    return [m[:, None, :] for m in _linear(F.silu(condition), stream.modulation.linear).chunk(6, dim=-1)]


def _layer_norm(x):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6)


def _heads_attention(q, k, v, bias=None):
    # softmax(Q K^T / sqrt(d_k) + bias) V per head; (B, N, D) -> (B, N, D); bias (H, Nq, Nk)
    b, nq, d = q.shape
    dh = d // HEADS
    q, k, v = (t.reshape(b, -1, HEADS, dh).transpose(1, 2) for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / math.sqrt(dh)
    weights = torch.softmax(logits if bias is None else logits + bias, dim=-1)
    return (weights @ v).transpose(1, 2).reshape(b, nq, d)


def _mlp(x, stream):
    hidden = F.gelu(_linear(x, stream.mlp.net[0].proj), approximate="tanh")
    return _linear(hidden, stream.mlp.net[2])


def _finish(stream, x, mixed, mods):
    _, _, gate1, shift2, scale2, gate2 = mods
    x1 = x + gate1 * mixed  # Eq. 8
    return x1 + gate2 * _mlp(_layer_norm(x1) * (1 + scale2) + shift2, stream)  # LN -> MLP -> residual


def _normed(x, mods):
    return _layer_norm(x) * (1 + mods[1]) + mods[0]


def test_dca_is_eq_7_and_8():
    stack = _stack("dca")
    block = stack.blocks[0]
    video, audio, condition = _tokens()
    vm, am = _mods(block.video, condition), _mods(block.audio, condition)
    nv, na = _normed(video, vm), _normed(audio, am)

    a2v = block.mixer.audio_to_video  # Eq. 7: Q from LN(L_V), K and V from LN(L_A)
    att_v = _heads_attention(_linear(nv, a2v.to_q), _linear(na, a2v.to_k), _linear(na, a2v.to_v))
    v2a = block.mixer.video_to_audio  # the symmetric V-to-A stream
    att_a = _heads_attention(_linear(na, v2a.to_q), _linear(nv, v2a.to_k), _linear(nv, v2a.to_v))
    expected_video = _finish(block.video, video, _linear(att_v, a2v.to_out[0]), vm)
    expected_audio = _finish(block.audio, audio, _linear(att_a, v2a.to_out[0]), am)

    got_video, got_audio = stack.run(0, video, audio, condition, GRID)
    torch.testing.assert_close(got_video, expected_video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_audio, expected_audio, atol=1e-5, rtol=1e-5)


def _alibi(query_times, key_times, slope):
    # -slope_h |t_q - t_k| with slope_h = slope / 2^h, written out head by head: (H, Nq, Nk)
    return torch.stack([-(slope / 2**h) * (query_times[:, None] - key_times[None, :]).abs() for h in range(HEADS)])


def test_dca_with_time_bias_is_eq_7_with_alibi_in_time():
    stack = _stack("dca", time_bias=1.5)
    block = stack.blocks[0]
    video, audio, condition = _tokens()
    vm, am = _mods(block.video, condition), _mods(block.audio, condition)
    nv, na = _normed(video, vm), _normed(audio, am)
    video_times = torch.tensor([0.0] * 4 + [1.0] * 4 + [2.0] * 4)  # 3 latent frames of 2 x 2 tokens
    audio_times = (torch.arange(NA) + 0.5) * 3 / NA - 0.5  # 5 audio tokens spread over the same 3 frames
    a2v, v2a = block.mixer.audio_to_video, block.mixer.video_to_audio
    att_v = _heads_attention(
        _linear(nv, a2v.to_q), _linear(na, a2v.to_k), _linear(na, a2v.to_v), _alibi(video_times, audio_times, 1.5)
    )
    att_a = _heads_attention(
        _linear(na, v2a.to_q), _linear(nv, v2a.to_k), _linear(nv, v2a.to_v), _alibi(audio_times, video_times, 1.5)
    )
    got_video, got_audio = stack.run(0, video, audio, condition, GRID)
    torch.testing.assert_close(
        got_video, _finish(block.video, video, _linear(att_v, a2v.to_out[0]), vm), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        got_audio, _finish(block.audio, audio, _linear(att_a, v2a.to_out[0]), am), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("time_bias", [0.0, 0.7])
def test_full_attention_is_eq_9_and_10(time_bias):
    """With a time bias, over the joint sequence (diffusers' JointAttnProcessor2_0 drops attention masks; ours not)."""
    stack = _stack("full_attention", time_bias=time_bias)
    block = stack.blocks[0]
    video, audio, condition = _tokens()
    vm, am = _mods(block.video, condition), _mods(block.audio, condition)
    nv, na = _normed(video, vm), _normed(audio, am)
    joint = block.mixer.joint
    # Eq. 9: modality-specific projections concatenated along the sequence
    q = torch.cat([_linear(nv, joint.to_q), _linear(na, joint.add_q_proj)], dim=1)
    k = torch.cat([_linear(nv, joint.to_k), _linear(na, joint.add_k_proj)], dim=1)
    v = torch.cat([_linear(nv, joint.to_v), _linear(na, joint.add_v_proj)], dim=1)
    times = torch.cat([torch.tensor([0.0] * 4 + [1.0] * 4 + [2.0] * 4), (torch.arange(NA) + 0.5) * 3 / NA - 0.5])
    out = _heads_attention(q, k, v, _alibi(times, times, time_bias) if time_bias else None)  # Eq. 10, split back
    expected_video = _finish(block.video, video, _linear(out[:, :NV], joint.to_out[0]), vm)
    expected_audio = _finish(block.audio, audio, _linear(out[:, NV:], joint.to_add_out), am)

    got_video, got_audio = stack.run(0, video, audio, condition, GRID)
    torch.testing.assert_close(got_video, expected_video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_audio, expected_audio, atol=1e-5, rtol=1e-5)


def test_additive_fusion_adds_time_aligned_projections():
    stack = _stack("additive")
    block = stack.blocks[0]
    video, audio, condition = _tokens()
    audio = audio[:, :3]  # as many audio steps as latent frames: the time alignment is then exact
    vm, am = _mods(block.video, condition), _mods(block.audio, condition)
    nv, na = _normed(video, vm), _normed(audio, am)
    per_frame_video = _linear(nv, block.mixer.video_proj).reshape(2, 3, 4, WIDTH).mean(dim=2)  # (B, F, D)
    audio_on_video = _linear(na, block.mixer.audio_proj).repeat_interleave(4, dim=1)  # each frame's 4 tokens
    expected_video = _finish(block.video, video, audio_on_video, vm)
    expected_audio = _finish(block.audio, audio, per_frame_video, am)

    got_video, got_audio = stack.run(0, video, audio, condition, GRID)
    torch.testing.assert_close(got_video, expected_video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_audio, expected_audio, atol=1e-5, rtol=1e-5)


def test_additive_fusion_averages_audio_over_each_frame():
    """Six audio steps over three latent frames: each frame gets the mean of its two steps, so a short event in
    any audio step reaches the video (point sampling would skip half of them)."""
    stack = _stack("additive")
    block = stack.blocks[0]
    video, _, condition = _tokens()
    audio = torch.randn(2, 6, WIDTH, generator=torch.Generator().manual_seed(3))
    vm, am = _mods(block.video, condition), _mods(block.audio, condition)
    per_frame_audio = _linear(_normed(audio, am), block.mixer.audio_proj).reshape(2, 3, 2, WIDTH).mean(dim=2)
    expected_video = _finish(block.video, video, per_frame_audio.repeat_interleave(4, dim=1), vm)
    got_video, _ = stack.run(0, video, audio, condition, GRID)
    torch.testing.assert_close(got_video, expected_video, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "fusion, video_hears_audio, audio_sees_video",
    [
        ("dca", True, True),
        ("full_attention", True, True),
        ("additive", True, True),
        ("v2a", False, True),
        ("a2v", True, False),
    ],
)
def test_direction_of_information_flow(fusion, video_hears_audio, audio_sees_video):
    stack = _stack(fusion)
    video, audio, condition = _tokens()
    with torch.no_grad():
        base_video, base_audio = stack.run(0, video, audio, condition, GRID)
        moved_video, _ = stack.run(0, video, audio + 1.0 * torch.randn_like(audio), condition, GRID)
        _, moved_audio = stack.run(0, video + 1.0 * torch.randn_like(video), audio, condition, GRID)
    assert (not torch.allclose(base_video, moved_video)) == video_hears_audio
    assert (not torch.allclose(base_audio, moved_audio)) == audio_sees_video


def test_both_directions_read_pre_bridge_states():
    """Changing how the video stream is updated (its MLP) leaves the audio result untouched: symmetric, parallel."""
    stack = _stack("dca")
    video, audio, condition = _tokens()
    with torch.no_grad():
        video_before, audio_before = stack.run(0, video, audio, condition, GRID)
        stack.blocks[0].video.mlp.net[2].weight.add_(1.0)
        video_after, audio_after = stack.run(0, video, audio, condition, GRID)
    assert not torch.allclose(video_before, video_after)
    assert torch.equal(audio_before, audio_after)


def test_both_timesteps_reach_both_streams():
    stack = _stack("dca")
    video, audio, _ = _tokens()
    t_video, t_audio = torch.tensor([700.0, 300.0]), torch.tensor([0.7, 0.3])
    with torch.no_grad():
        stack.timestep_embedding.audio_embedder.linear_2.bias.normal_()
        base = stack.run(0, video, audio, stack.condition(t_video, t_audio), GRID)
        other_audio_t = stack.run(0, video, audio, stack.condition(t_video, t_audio * 0.5), GRID)
        other_video_t = stack.run(0, video, audio, stack.condition(t_video * 0.5, t_audio), GRID)
    for changed in (other_audio_t, other_video_t):
        assert not torch.allclose(base[0], changed[0])  # video stream
        assert not torch.allclose(base[1], changed[1])  # audio stream


@pytest.mark.parametrize(
    "time_encoding, time_bias, space_encoding", [(False, 0.0, False), (True, 0.0, False), (False, 2.0, True)]
)
@pytest.mark.parametrize("fusion", [f for f in FUSION_KINDS if f != "none"])
def test_untrained_bridge_is_the_identity(fusion, time_encoding, time_bias, space_encoding):
    config = BridgeConfig(
        fusion=fusion,
        video_blocks=(0,),
        audio_blocks=(0,),
        width=WIDTH,
        num_heads=HEADS,
        timestep_embed_dim=COND,
        time_encoding=time_encoding,
        time_bias=time_bias,
        space_encoding=space_encoding,
    )
    stack = BridgeStack(config, video_width=24, audio_width=20)  # towers wider than the bridge: adapters in/out
    video, audio, _ = _tokens(video_width=24, audio_width=20)
    condition = stack.condition(torch.tensor([500.0, 10.0]), torch.tensor([0.5, 0.01]))
    got_video, got_audio = stack.run(0, video, audio, condition, GRID)
    assert torch.equal(got_video, video) and torch.equal(got_audio, audio)


def test_width_adapters_change_outputs_once_gates_open():
    stack = _stack("dca", video_width=24, audio_width=20)
    video, audio, condition = _tokens(video_width=24, audio_width=20)
    got_video, got_audio = stack.run(0, video, audio, condition, GRID)
    assert got_video.shape == video.shape and got_audio.shape == audio.shape
    assert not torch.allclose(got_video, video) and not torch.allclose(got_audio, audio)


def test_registry_covers_every_configurable_fusion():
    assert set(FUSIONS) | {"none"} == set(FUSION_KINDS)
    assert len(BridgeStack(BridgeConfig(fusion="none"), video_width=8, audio_width=8).blocks) == 0


def test_token_times_put_both_streams_on_one_time_axis():
    video_times, audio_times = token_times(GRID, 6, torch.device("cpu"))
    assert video_times.tolist() == [0.0] * 4 + [1.0] * 4 + [2.0] * 4  # frame-major video tokens
    assert audio_times.tolist() == pytest.approx([-0.25, 0.25, 0.75, 1.25, 1.75, 2.25])  # centres over [-0.5, 2.5]
    encoding = time_encoding(torch.tensor([0.0, 0.5, 1.0, 3.0]), WIDTH)
    similarity = (encoding @ encoding[0]).tolist()
    assert similarity[0] > similarity[1] > similarity[2] > similarity[3]  # nearer in time, more alike


@pytest.mark.parametrize("fusion", ["dca", "v2a", "full_attention"])
def test_without_time_encoding_audio_cannot_tell_when_video_happens(fusion):
    """Attention has no positions inside a bridge: reordering the video frames leaves the audio update unchanged,
    so no bridge could align events in time. The time encoding breaks that symmetry."""
    video, audio, condition = _tokens()
    reordered = video.reshape(2, 3, 4, WIDTH)[:, [2, 0, 1]].reshape(2, NV, WIDTH)  # frames (0, 1, 2) -> (2, 0, 1)
    for positions in ({}, {"time_encoding": True}, {"time_bias": 1.0}):
        stack = _stack(fusion, **positions)
        _, audio_out = stack.run(0, video, audio, condition, GRID)
        _, audio_reordered = stack.run(0, reordered, audio, condition, GRID)
        assert torch.allclose(audio_out, audio_reordered, atol=1e-5) is (not positions)


@pytest.mark.parametrize("fusion", ["dca", "v2a", "full_attention"])
def test_without_space_encoding_audio_cannot_tell_where_in_a_frame_video_happens(fusion):
    """Neither the time bias nor the time encoding says where a token is in its frame: moving what every frame shows
    from one place to another (here the four tokens of each frame reversed) leaves the audio update unchanged, so a
    ball on the floor and one in the air look alike to the audio. The space encoding breaks that symmetry."""
    video, audio, condition = _tokens()
    moved = video.reshape(2, 3, 4, WIDTH).flip(2).reshape(2, NV, WIDTH)  # each frame's tokens in reverse order
    for positions in ({"time_bias": 1.0, "time_encoding": True}, {"time_bias": 1.0, "space_encoding": True}):
        stack = _stack(fusion, **positions)
        _, audio_out = stack.run(0, video, audio, condition, GRID)
        _, audio_moved = stack.run(0, moved, audio, condition, GRID)
        assert torch.allclose(audio_out, audio_moved, atol=1e-5) is (not positions.get("space_encoding", False))


def test_space_encoding_codes_row_and_column_alike_in_every_frame():
    encoding = space_encoding(GRID, WIDTH, torch.device("cpu"))  # (12, WIDTH): 3 frames of 2 x 2 tokens
    assert encoding.shape == (NV, WIDTH)
    assert torch.equal(encoding[:4], encoding[4:8]) and torch.equal(encoding[:4], encoding[8:])
    rows, columns = encoding[:4, : WIDTH // 2], encoding[:4, WIDTH // 2 :]
    assert torch.equal(rows[0], rows[1]) and not torch.equal(rows[0], rows[2])  # tokens 0, 1: row 0; 2, 3: row 1
    assert torch.equal(columns[0], columns[2]) and not torch.equal(columns[0], columns[1])


def test_a_strong_time_bias_makes_each_audio_token_read_its_own_frame():
    """With a steep bias an audio token's update depends on the video frame at its own time and (almost) no other."""
    stack = _stack("dca", time_bias=40.0)
    video, audio, condition = _tokens()
    _, base = stack.run(0, video, audio, condition, GRID)
    changed_last_frame = video.clone()
    changed_last_frame[:, 8:] = torch.randn(2, 4, WIDTH, generator=torch.Generator().manual_seed(5))  # frame 2
    _, audio_out = stack.run(0, changed_last_frame, audio, condition, GRID)
    moved = (audio_out - base).abs().amax(dim=(0, 2))  # per audio token; times -0.2, 0.4, 1.0, 1.6, 2.2
    assert moved[:3].max() < 1e-6 < moved[4]  # tokens nearest frames 0 and 1 untouched; the last one moves


def test_time_bias_must_not_be_negative():
    with pytest.raises(ConfigError, match="time_bias"):
        BridgeConfig(time_bias=-1.0)


# ----------------------------------------------------------------------------------------------------
# The authors' released options (their equality with the release: tests/test_official.py)
# ----------------------------------------------------------------------------------------------------


def _released_stack(fusion, video_width=24, audio_width=20, seed=0):
    from bridgedit.config import RELEASED_BRIDGE

    torch.manual_seed(seed)
    config = BridgeConfig(
        fusion=fusion, video_blocks=(0,), audio_blocks=(0,), width=WIDTH, num_heads=HEADS, **RELEASED_BRIDGE
    )
    return BridgeStack(
        config,
        video_width=video_width,
        audio_width=audio_width,
        video_condition_dim=COND + 1,
        audio_condition_dim=COND + 2,
    )


def _tower_conditions(seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, COND + 1, generator=g), torch.randn(2, COND + 2, generator=g)


@pytest.mark.parametrize("fusion", [f for f in FUSION_KINDS if f != "none"])
def test_a_fresh_released_bridge_is_the_identity(fusion):
    """The release's initialisation (xavier q/k/v, zero output projections and MLP outputs, default modulation):
    the gates are open from the start, yet a fresh bridge returns its input exactly."""
    stack = _released_stack(fusion)
    block = stack.blocks[0]
    assert block.video.modulation.linear.weight.abs().sum() > 0  # not adaLN-Zero: the gates are not zero
    assert block.video.width == 24 and block.audio.width == 20  # streams at the towers' widths, no adapters
    video, audio, _ = _tokens(video_width=24, audio_width=20)
    got_video, got_audio = stack.run(0, video, audio, _tower_conditions(), GRID)
    assert torch.equal(got_video, video) and torch.equal(got_audio, audio)


def _open_outputs(stack, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in stack.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(0.3 * torch.randn(module.weight.shape, generator=g))


def test_released_streams_read_their_own_towers_time_embedding():
    stack = _released_stack("dca")
    _open_outputs(stack)
    video, audio, _ = _tokens(video_width=24, audio_width=20)
    video_condition, audio_condition = _tower_conditions()
    base = stack.run(0, video, audio, (video_condition, audio_condition), GRID)
    other_audio = stack.run(0, video, audio, (video_condition, audio_condition * 0.5), GRID)
    # the audio condition modulates the audio stream; the video stream sees it only through what it reads of audio
    assert not torch.allclose(base[1], other_audio[1])
    assert stack.timestep_embedding is None  # no embedding of the bridges' own


@pytest.mark.parametrize("fusion", ["dca", "full_attention", "v2a", "a2v"])
def test_rotary_positions_make_attention_see_token_order(fusion):
    """Without positions attention is blind to the order of the keys; with the release's rotary tables, reversing
    the video tokens changes what the audio stream reads."""
    stack = _released_stack(fusion)
    _open_outputs(stack)
    video, audio, _ = _tokens(video_width=24, audio_width=20)
    conditions = _tower_conditions()
    _, audio_update = stack.run(0, video, audio, conditions, GRID)
    _, audio_update_reversed = stack.run(0, video.flip(1), audio, conditions, GRID)
    if fusion == "a2v":  # the audio stream self-attends and never reads video
        assert torch.allclose(audio_update, audio_update_reversed)
    else:
        assert not torch.allclose(audio_update, audio_update_reversed, atol=1e-4)


def test_global_mean_additive_adds_one_vector_per_stream():
    stack = _released_stack("additive")
    _open_outputs(stack)
    mixer = stack.blocks[0].mixer
    video, audio, _ = _tokens(video_width=24, audio_width=20)
    to_video, to_audio = mixer(video, audio, GRID)
    assert to_video.shape == (2, 1, 24) and to_audio.shape == (2, 1, 20)
    torch.testing.assert_close(to_video[:, 0], _linear(audio.mean(1), mixer.audio_to_video))
    assert stack.blocks[0].video.modulation.chunks == 4  # gate of the mix, then shift, scale, gate of the MLP


def test_release_options_are_checked():
    with pytest.raises(ConfigError, match="bridge.condition='both' is unknown"):
        BridgeConfig(condition="both")
    with pytest.raises(ConfigError, match="audio_global_token .* cannot be combined"):
        BridgeConfig(audio_global_token=True, time_bias=1.0)
