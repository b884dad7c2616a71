"""FLOP counting that also sees the fused attention kernels PyTorch picks on CPU.

``torch.utils.flop_counter`` counts matmuls, convolutions and the CUDA attention kernels. On CPU an
eval-mode ``nn.MultiheadAttention`` (open_clip's ViT blocks) takes the fast path
``aten._native_multi_head_attention``, and ``scaled_dot_product_attention`` dispatches to
``aten._scaled_dot_product_flash_attention_for_cpu``: neither has a formula, so a plain count
would miss every attention of the backbone (its QKV and output projections included) and make
any method look cheap next to it. The two formulas below fill that gap.

As in ``flop_counter``, one multiply-add is two FLOPs and elementwise ops are not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def native_mha_flop(query, key, value, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight,
                    proj_bias, *args, out_shape=None, **kwargs) -> int:
    """``_native_multi_head_attention``: Q/K/V projections, the two attention products, the output
    projection. Arguments arrive as shapes (``flop_counter`` converts tensors); query (B, N, E),
    key/value (B, S, E) with ``batch_first`` as open_clip builds it."""
    *lead, n, e = query
    s = key[-2]
    batch = 1
    for size in lead:
        batch *= size
    projections = 2 * batch * (n + 2 * s) * e * e + 2 * batch * n * e * e
    attention = 2 * 2 * batch * n * s * e  # Q K^T and A V over all heads: sum of head widths = E
    return projections + attention


def sdpa_cpu_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """``_scaled_dot_product_flash_attention_for_cpu``: q (B, H, N, d), k (B, H, S, d), v (B, H, S, dv)."""
    *lead, n, d = query
    s, dv = key[-2], value[-1]
    batch = 1
    for size in lead:
        batch *= size
    return 2 * batch * n * s * d + 2 * batch * n * s * dv


def _custom_formulas() -> dict[Any, Callable[..., int]]:
    formulas: dict[Any, Callable[..., int]] = {aten._native_multi_head_attention: native_mha_flop}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        formulas[aten._scaled_dot_product_flash_attention_for_cpu] = sdpa_cpu_flop
    return formulas


def flop_counter() -> FlopCounterMode:
    """A quiet :class:`FlopCounterMode` that knows the CPU attention kernels."""
    return FlopCounterMode(display=False, custom_mapping=_custom_formulas())
