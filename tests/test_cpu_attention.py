"""MatmulAttention computes what PyTorch's scaled_dot_product_attention computes, and takes over only what it covers."""

import pytest
import torch
import torch.nn.functional as F
from conftest import open_gates, tiny_bridgedit, tiny_inputs

from bridgedit.cpu_attention import MatmulAttention, matmul_attention


def _qkv(dtype=torch.float64, *, heads=4, kv_heads=4, queries=7, keys=9, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(2, heads, queries, dim), (2, kv_heads, keys, dim), (2, kv_heads, keys, dim)]
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype).requires_grad_() for shape in shapes]


def _masks():
    g = torch.Generator().manual_seed(1)
    allowed = torch.rand(2, 1, 7, 9, generator=g) > 0.4
    allowed[0, 0, 3] = False  # a query with no key to attend to: PyTorch gives zeros
    allowed[:, :, :, 0] = allowed[:, :, :, 0] | (torch.arange(7) != 3)  # every other query attends to something
    return {"none": None, "boolean": allowed, "additive": torch.randn(2, 4, 7, 9, generator=g, dtype=torch.float64)}


@pytest.mark.parametrize("mask", ["none", "boolean", "additive"])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_matmul_attention_equals_pytorch_values_and_gradients(mask, grouped, scale):
    attn_mask = _masks()[mask]
    q, k, v = _qkv(kv_heads=2 if grouped else 4)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale, enable_gqa=grouped)
    expected_grads = torch.autograd.grad(expected.square().sum(), (q, k, v))
    got = matmul_attention(q, k, v, attn_mask, scale=scale, enable_gqa=grouped)
    got_grads = torch.autograd.grad(got.square().sum(), (q, k, v))
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12)
    if mask == "boolean":
        assert torch.count_nonzero(got[0, :, 3]) == 0


@pytest.mark.parametrize("mask", ["boolean", "additive"])
def test_a_query_with_no_key_gets_zeros_as_from_the_fused_kernel(mask):
    """PyTorch's fused CPU kernel (the one MatmulAttention stands in for) gives zeros, and zero gradients, to a query
    whose mask leaves it no key; its math kernel gives NaN for a float mask."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = _qkv(torch.float32)
    attn_mask = torch.zeros(2, 4, 7, 9)
    attn_mask[1, 2, 5] = float("-inf")
    if mask == "boolean":
        attn_mask = attn_mask == 0
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        expected_grads = torch.autograd.grad(expected.square().sum(), (q, k, v))
    got = matmul_attention(q, k, v, attn_mask)
    got_grads = torch.autograd.grad(got.square().sum(), (q, k, v))
    assert torch.count_nonzero(got[1, 2, 5]) == 0 and torch.count_nonzero(expected[1, 2, 5]) == 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(got_grads, expected_grads):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_bf16_matches_float32_within_bf16_precision():
    q, k, v = _qkv(torch.float32, queries=272, keys=272, dim=64)
    reference = F.scaled_dot_product_attention(q, k, v)
    got = matmul_attention(*(t.detach().bfloat16() for t in (q, k, v)))
    assert got.dtype == torch.bfloat16
    error = (got.float() - reference).abs().max().item()
    assert error < 0.02, error  # bf16 keeps 8 bits: values of order 0.1-1 round by up to ~4e-3 per step


def test_mode_takes_over_only_covered_calls():
    q, k, v = _qkv(torch.bfloat16)
    mode = MatmulAttention()
    with mode:
        F.scaled_dot_product_attention(q, k, v)  # covered, positional
        F.scaled_dot_product_attention(query=q, key=k, value=v, scale=0.5)  # covered, by name (diffusers' dispatcher)
        assert mode.calls == 2
        F.scaled_dot_product_attention(q.float(), k.float(), v.float())  # other dtype
        F.scaled_dot_product_attention(q, k, v, is_causal=True)
        F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)
        assert mode.calls == 2
    small = MatmulAttention(max_score_bytes=4 * 2 * 4 * 7 * 9 - 1)  # one byte short of these scores
    with small:
        F.scaled_dot_product_attention(q, k, v)
    assert small.calls == 0


@pytest.mark.parametrize("fusion", ["dca", "full_attention"])
def test_bridgedit_forward_and_backward_unchanged_under_the_mode(fusion):
    """Every attention of the towers (diffusers' Wan and Stable Audio processors, text cross-attention, grouped
    keys) and of the bridges goes through the mode and computes the same, values and gradients (float32 taken over
    here so that the comparison is exact)."""
    torch.manual_seed(0)
    model = tiny_bridgedit(fusion)
    open_gates(model)
    inputs = tiny_inputs()

    def run():
        model.zero_grad()
        video, audio = model(**inputs)
        (video.square().mean() + audio.square().mean()).backward()
        return video, audio, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    expected = run()
    mode = MatmulAttention(dtypes=(torch.float32,))
    with mode:
        got = run()
    towers_attentions = 2 * 6 * 2  # video and audio towers, 6 blocks, self- and cross-attention
    assert mode.calls > towers_attentions
    torch.testing.assert_close(got[0], expected[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-4, atol=1e-5)
    assert got[2].keys() == expected[2].keys() and got[2]
    for name in expected[2]:
        torch.testing.assert_close(got[2][name], expected[2][name], rtol=1e-3, atol=1e-6, msg=name)
