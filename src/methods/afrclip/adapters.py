"""The linear adapters of AFR-CLIP: one per visual stage, one shared by the three text prompts.

Visual adapters map the raw intermediate tokens of a tapped block (no ``ln_post``, no CLIP
projection) from the ViT width C into the joint width D, as APRIL-GAN does on the same taps with
the same 518 px input. The text adapter is Eq. 2's linear layer on frozen CLIP text features.
Both use PyTorch's default init (APRIL-GAN).
"""

from __future__ import annotations

import torch
from torch import nn


class StageAdapters(nn.Module):
    """``Linear(C -> D)`` per tapped stage.

    Args:
        num_stages: number of tapped blocks.
        width: ViT width C.
        dim: joint width D.
    """

    def __init__(self, num_stages: int, width: int, dim: int) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(width, dim) for _ in range(num_stages))

    def forward(self, taps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Map each stage's (B, 1 + L, C) tokens to (B, 1 + L, D)."""
        if len(taps) != len(self.linears):
            raise ValueError(f"StageAdapters built for {len(self.linears)} stages got {len(taps)} taps")
        return [linear(tokens) for linear, tokens in zip(self.linears, taps)]


class TextAdapter(nn.Linear):
    """Eq. 2's ``Linear(D -> D)`` shared by the normal, abnormal and stateless prompt features."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, dim)
