"""FB-Attention: a token gate splitting foreground/background, each refined by its own attention.

One instance is shared by every token set (all layers and views). For tokens y (B, N, C):
``g = sigmoid(MLP(y))``, ``out = LN(Attn_fg(g y) + Attn_bg((1 - g) y))`` with no residual, where each
branch is ``LayerNorm -> q, k, v (bias-free, heads x head_dim) -> softmax(q k^T s) v -> Linear``
with a learnable temperature ``s`` (initialised to ``head_dim ** -0.5``).

The attention runs through ``scaled_dot_product_attention``: its ``scale`` must be a Python
number, so the learnable ``s`` is folded into q (``(q s) k^T`` with scale 1), which is the same
product up to fp32 rounding (the release multiplies after the matmul) and keeps ``s`` learnable.
The fused kernels never materialise the (N, N) maps, which at 1370 tokens, 8 heads, 2 branches and
15 sets would otherwise be the memory peak of training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AttentionBranch(nn.Module):
    """LayerNorm + multi-head self-attention with a learnable temperature. (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, heads: int = 8, head_dim: int = 64) -> None:
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.scale = nn.Parameter(torch.tensor(head_dim**-0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        h = self.norm(x)
        q, k, v = (f(h).view(B, N, self.heads, -1).transpose(1, 2) for f in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q * self.scale, k, v, scale=1.0)
        return self.to_out(out.transpose(1, 2).reshape(B, N, -1))

    def forward_dense(self, x: torch.Tensor) -> torch.Tensor:
        """The release's literal computation (explicit maps, scale after the matmul); tests only."""
        B, N, _ = x.shape
        h = self.norm(x)
        q, k, v = (f(h).view(B, N, self.heads, -1).transpose(1, 2) for f in (self.to_q, self.to_k, self.to_v))
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.to_out((attn @ v).transpose(1, 2).reshape(B, N, -1))


class FBAttention(nn.Module):
    """Gate + foreground and background attention branches + LayerNorm (no residual).

    Args:
        dim: C, token width (1024 for ViT-L).
        heads: heads per branch (8).
        head_dim: width per head (64).
    """

    def __init__(self, dim: int, heads: int = 8, head_dim: int = 64) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim // 2), nn.ReLU(), nn.Linear(dim // 2, 1), nn.Sigmoid())
        self.fg = AttentionBranch(dim, heads, head_dim)
        self.bg = AttentionBranch(dim, heads, head_dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, y: torch.Tensor, dense: bool = False) -> torch.Tensor:
        """(B, N, C) -> (B, N, C); ``dense`` uses the explicit-map reference path."""
        g = self.gate(y)
        if dense:
            out = self.fg.forward_dense(g * y) + self.bg.forward_dense((1 - g) * y)
        else:
            out = self.fg(g * y) + self.bg((1 - g) * y)
        return self.norm(out)
