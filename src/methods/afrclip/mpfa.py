"""MPFA: multi-patch feature aggregation (AFR-CLIP Sec. "MPFA", README A8).

Each patch token is replaced by the mean of its ``m x m`` neighbourhood on the token grid
(stride 1, so the grid keeps its size). Border cells average only their real neighbours
(``count_include_pad=False``): zero padding *with* counting, as AF-CLIP does, would darken the
border and make a constant grid non-constant. The CLS token is not a grid cell and is passed
through untouched. ``m = 1`` is the identity.

In evaluation (inference mode) it is computed as two 1-D box sums over the (B, gh, gw, D) view
of the tokens divided by the count of real cells:
``avg_pool2d`` would need the tokens transposed to (B, D, gh, gw) and back, three
layout copies of a (1369 x 768) grid per stage at 518 px; the result equals it up to float
rounding (the sums run in another order).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _box_sum(x: torch.Tensor, dim: int, radius: int) -> torch.Tensor:
    """Sum over ``[i - radius, i + radius]`` along ``dim``, cells beyond the border left out."""
    total = x.clone()
    n = x.shape[dim]
    for shift in range(1, min(radius, n - 1) + 1):
        total.narrow(dim, shift, n - shift).add_(x.narrow(dim, 0, n - shift))
        total.narrow(dim, 0, n - shift).add_(x.narrow(dim, shift, n - shift))
    return total


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
        if not torch.is_inference_mode_enabled():
            # Training keeps avg_pool2d, so trained weights stay bit-identical to the plain form.
            grid = tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)
            grid = F.avg_pool2d(grid, self.kernel, stride=1, padding=self.kernel // 2, count_include_pad=False)
            return torch.cat([tokens[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)
        grid = tokens[:, 1:].unflatten(1, (gh, gw))  # (B, gh, gw, D), a view
        summed = _box_sum(_box_sum(grid, 2, self.kernel // 2), 1, self.kernel // 2)
        patches = summed.div_(self._counts(gh, gw, tokens)).flatten(1, 2)
        return torch.cat([tokens[:, :1], patches], dim=1)

    def _counts(self, gh: int, gw: int, like: torch.Tensor) -> torch.Tensor:
        """(gh, gw, 1) real cells in each neighbourhood: rows in reach times columns in reach."""
        r = self.kernel // 2
        rows = [min(i + r, gh - 1) - max(i - r, 0) + 1 for i in range(gh)]
        cols = [min(j + r, gw - 1) - max(j - r, 0) + 1 for j in range(gw)]
        rows_t = torch.tensor(rows, dtype=like.dtype, device=like.device)
        cols_t = torch.tensor(cols, dtype=like.dtype, device=like.device)
        return (rows_t[:, None] * cols_t[None, :])[..., None]

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, grid_size={self.grid_size}"
