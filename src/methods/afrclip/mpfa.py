"""MPFA: multi-patch feature aggregation (AFR-CLIP Sec. "MPFA", README A8).

Each patch token is replaced by the mean of its ``m x m`` neighbourhood on the token grid
(stride 1, so the grid keeps its size). Border cells average only their real neighbours
(``count_include_pad=False``): zero padding *with* counting, as AF-CLIP does, would darken the
border and make a constant grid non-constant. The CLS token is not a grid cell and is passed
through untouched. ``m = 1`` is the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MPFA(nn.Module):
    """Stride-1 ``m x m`` average over the patch grid; CLS untouched.

    Args:
        kernel: neighbourhood side ``m``, a positive odd integer (1 = off).
        grid_size: (gh, gw) patch grid of the tokens.
    """

    def __init__(self, kernel: int, grid_size: tuple[int, int]) -> None:
        super().__init__()
        if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ValueError(
                f"mpfa_kernel must be a positive odd integer (1 = MPFA off, the paper uses 3; Table 6 "
                f"also 5), got {kernel!r}"
            )
        self.kernel = kernel
        self.grid_size = tuple(grid_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Aggregate the patch tokens.

        Args:
            tokens: (B, 1 + L, D) with the CLS token first and L = gh * gw.

        Returns:
            (B, 1 + L, D) with the same CLS token and neighbourhood-averaged patches.
        """
        gh, gw = self.grid_size
        if tokens.shape[1] != 1 + gh * gw:
            raise ValueError(
                f"MPFA expects 1 + {gh}x{gw} = {1 + gh * gw} tokens (CLS first), got {tokens.shape[1]}"
            )
        if self.kernel == 1:
            return tokens
        cls, patches = tokens[:, :1], tokens[:, 1:]
        grid = patches.transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)
        grid = F.avg_pool2d(grid, self.kernel, stride=1, padding=self.kernel // 2, count_include_pad=False)
        patches = grid.flatten(2).transpose(1, 2)
        return torch.cat([cls, patches], dim=1)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, grid_size={self.grid_size}"
