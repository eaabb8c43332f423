"""Attention as plain matrix products, for bf16 on a CPU.

PyTorch's fused CPU attention (the flash kernel behind `torch.nn.functional.scaled_dot_product_attention`) gains
nothing from bf16 at the demo model's shapes (a few hundred tokens, heads of 32-64 channels): forward and backward
take about as long as in float32, while the model's other matrix products run 3-4x faster in bf16 on CPUs that
multiply it in hardware. Written as two batched products around a softmax computed in float32, the same attention
runs about twice as fast in bf16 there, and a bf16 bridge-stage training step of the demo model 1.2-1.6x faster
(experiments/synthetic/bridge_step_cost.py).

Why not diffusers' own mechanism. diffusers 0.42 selects an attention backend (`attention_backend("_native_math")`,
`set_attention_backend`) only where a processor calls `dispatch_attention_fn`: Wan's does, but Stable Audio's
`StableAudioAttnProcessor2_0` and `AttnProcessor2_0` / `JointAttnProcessor2_0` (the bridges') call
`F.scaled_dot_product_attention` themselves, so a backend would reach one of the three users of attention; processors
set on every module would be four copies of one replacement. Its math backend is also not this computation: measured
on a 2-core CPU without native bf16 (2 x 12 heads x 600 tokens x 64, bf16), PyTorch's math kernel took 0.24 s,
these matrix products 1.15 s (emulated bf16 products) and the fused kernel 0.047 s, so the speed that decides is the
one on a CPU with native bf16, where the figures above were measured; compare the math backend there before
replacing this (`experiments/synthetic/bridge_step_cost.py`).

`MatmulAttention` is a `torch.overrides.TorchFunctionMode`: inside it, every call of
`scaled_dot_product_attention` on CPU tensors of the chosen dtypes — diffusers' Wan and Stable Audio attention
processors and our bridges alike — runs this way, and every other call runs unchanged. Calls it does not cover
(dropout, `is_causal`, score matrices above `max_score_bytes`) go to PyTorch's kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

#: the largest (batch, heads, queries, keys) score matrix written out in full, counted at 4 bytes a score; larger go to
#: the fused kernel, which never materialises it
MAX_SCORE_BYTES = 256 * 2**20


def matmul_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """`scaled_dot_product_attention` (no dropout, not causal) as softmax(q k^T * scale + mask) v. query (..., heads,
    Lq, D), key/value (..., kv_heads, Lk, D) -> (..., heads, Lq, Dv). A boolean mask marks the keys to attend to; a
    float mask is added to the scores; a query that may attend to no key gets zeros, as from PyTorch's kernel.

    In bf16 the scores leave their product in bf16 (accumulated in float32 inside it) and the softmax computes in
    float32 inside and rounds its weights to bf16, as the fused kernels round them before the product with v."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeats = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeats, dim=-3), value.repeat_interleave(repeats, dim=-3)
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = torch.matmul(query * scale, key.transpose(-1, -2))  # (..., heads, Lq, Lk)
    if attn_mask is None:
        return torch.matmul(torch.softmax(scores, dim=-1), value)
    if attn_mask.dtype == torch.bool:
        no_key = ~attn_mask.any(dim=-1)  # the mask's queries that may attend to no key (checked on the mask: smaller)
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    else:
        no_key = torch.isneginf(attn_mask).all(dim=-1)
        scores = scores + attn_mask  # a float32 mask makes float32 scores
    if not no_key.any():
        return torch.matmul(torch.softmax(scores, dim=-1).to(value.dtype), value)
    no_key = no_key.unsqueeze(-1)  # (..., Lq, 1)
    # their scores are all -inf (a softmax of NaN): set finite for the softmax, then their weights to zero, as PyTorch's
    # fused kernel; both fills pass no gradient to those rows, so none becomes NaN
    weights = torch.softmax(scores.masked_fill(no_key, 0.0), dim=-1).masked_fill(no_key, 0.0)
    return torch.matmul(weights.to(value.dtype), value)


class MatmulAttention(TorchFunctionMode):
    """Within `with MatmulAttention():`, `scaled_dot_product_attention` on CPU tensors of `dtypes` runs as
    `matmul_attention`; `calls` counts the calls it took over."""

    def __init__(self, dtypes: tuple[torch.dtype, ...] = (torch.bfloat16,), max_score_bytes: int = MAX_SCORE_BYTES):
        super().__init__()
        self.dtypes, self.max_score_bytes, self.calls = dtypes, max_score_bytes, 0

    def covers(self, query: torch.Tensor, key: torch.Tensor, dropout_p: float = 0.0, is_causal: bool = False) -> bool:
        score_bytes = 4 * query.shape[:-1].numel() * key.shape[-2]
        return (
            query.device.type == "cpu"
            and query.dtype in self.dtypes
            and not dropout_p
            and not is_causal
            and score_bytes <= self.max_score_bytes
        )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            bound = _bind_attention_arguments(*args, **kwargs)
            if self.covers(bound["query"], bound["key"], bound["dropout_p"], bound["is_causal"]):
                self.calls += 1
                return matmul_attention(
                    bound["query"],
                    bound["key"],
                    bound["value"],
                    bound["attn_mask"],
                    bound["scale"],
                    bound["enable_gqa"],
                )
        return func(*args, **kwargs)


def _bind_attention_arguments(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
) -> dict:
    """scaled_dot_product_attention's arguments by name, however they were passed."""
    return {
        "query": query,
        "key": key,
        "value": value,
        "attn_mask": attn_mask,
        "dropout_p": dropout_p,
        "is_causal": is_causal,
        "scale": scale,
        "enable_gqa": enable_gqa,
    }
