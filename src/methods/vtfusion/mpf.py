"""MPF: multi-modal prediction fusion (Eq. 7) and the multi-scale segmentation network φ (Eq. 9).

The paper says only "self-attention", "residual block of conv + BN + ReLU" and "FPN-like
multi-scale aggregation [ASGNet/PFENet]"; the widths and the layout below are our
RESOLUTIONs (B8, B9): a SAGAN/DANet position attention with a zero-initialised residual scale,
and PFENet's feature enrichment module at a 4x up-sampled working resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

SAM_OUTPUTS = ("attended", "attention_matrix")


def _bilinear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def _resize(x: torch.Tensor, size: Sequence[int], resize: Callable[..., torch.Tensor]) -> torch.Tensor:
    """``resize(x, size)``, skipped where ``x`` already has that size (both resizes are then the
    identity, exactly; the finest bin of φ is the working size itself)."""
    return x if tuple(x.shape[-2:]) == tuple(size) else resize(x, size)


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class PositionAttention(nn.Module):
    """Position self-attention (SAGAN/DANet): ``γ · V Aᵀ + x`` with ``A = softmax(Qᵀ K)`` over positions.

    γ starts at 0, so the block is the identity at initialisation and attention is phased in.

    Args:
        dim: channels d of the input (B, d, h, w).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        reduced = max(1, dim // 8)
        self.query = nn.Conv2d(dim, reduced, 1)
        self.key = nn.Conv2d(dim, reduced, 1)
        self.value = nn.Conv2d(dim, dim, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) -> (B, hw, hw) row-stochastic attention between positions."""
        q = self.query(x).flatten(2)  # (B, d/8, hw)
        k = self.key(x).flatten(2)
        return torch.bmm(q.transpose(1, 2), k).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, d, h, w) -> attended (B, d, h, w) and the attention matrix (B, hw, hw)."""
        b, d, h, w = x.shape
        attn = self.attention(x)
        v = self.value(x).flatten(2)  # (B, d, hw)
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, d, h, w)
        return self.gamma * out + x, attn


class FusionBlock(nn.Module):
    """``M^vt = G(SAM(lift(M^v)) ⊕ SAM(lift(M^t)))`` with G a residual conv-BN-ReLU block.

    Args:
        vision_channels: channels of M^v (1, or ``vision_topk``).
        text_channels: channels of M^t (1).
        dim: lifted width d (32).
        sam_output: ``attended`` (default, Eq. 7; a declared DEVIATION from the sentence that
            concatenates the attention matrices) or ``attention_matrix`` (that sentence literally:
            the (hw, hw) matrices as hw-channel maps; needs the grid size).
        grid: (h, w) token grid, required for ``attention_matrix``.
    """

    def __init__(
        self,
        vision_channels: int = 1,
        text_channels: int = 1,
        dim: int = 32,
        sam_output: str = "attended",
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if sam_output not in SAM_OUTPUTS:
            raise ValueError(f"sam_output must be one of {list(SAM_OUTPUTS)}, got {sam_output!r}")
        if sam_output == "attention_matrix" and grid is None:
            raise ValueError("sam_output='attention_matrix' needs the token grid (h, w)")
        self.sam_output = sam_output
        self.lift_v = conv_bn_relu(vision_channels, dim)
        self.lift_t = conv_bn_relu(text_channels, dim)
        self.sam_v = PositionAttention(dim)
        self.sam_t = PositionAttention(dim)
        fused = 2 * dim if sam_output == "attended" else 2 * grid[0] * grid[1]
        self.body = nn.Sequential(
            nn.Conv2d(fused, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim),
        )
        self.skip = nn.Sequential(nn.Conv2d(fused, dim, 1), nn.BatchNorm2d(dim))
        self.out = nn.Conv2d(dim, 1, 1)

    def sam(self, x: torch.Tensor, lift: nn.Module, attend: PositionAttention) -> torch.Tensor:
        attended, attn = attend(lift(x))
        if self.sam_output == "attended":
            return attended
        b, _, h, w = x.shape
        # Row p of A is how position p attends to all others: channel q at p = A[p, q].
        return attn.transpose(1, 2).reshape(b, h * w, h, w)

    def forward(self, vision_map: torch.Tensor, text_map: torch.Tensor) -> torch.Tensor:
        """M^v (B, c_v, h, w), M^t (B, 1, h, w) -> M^vt (B, 1, h, w)."""
        x = torch.cat([self.sam(vision_map, self.lift_v, self.sam_v), self.sam(text_map, self.lift_t, self.sam_t)], 1)
        return self.out(F.relu(self.body(x) + self.skip(x)))


class SegmentationNet(nn.Module):
    """φ: PFENet's feature enrichment module on the stacked prediction maps (PCSNet's ``casnet``).

    Input maps are up-sampled to ``upsample`` x the grid, lifted to ``width`` channels; each bin
    (adaptive average pool to b x b, bins scaled from {60, 30, 15, 8} at a 60 x 60 working size)
    is refined, merged with the previous (finer) bin by a 1 x 1 conv, refined by a residual pair
    of 3 x 3 convs, and resized back; the bins are concatenated and decoded to one raw channel (no
    sigmoid: L_SEG regresses the mask with MSE). PCSNet's auxiliary per-bin heads never entered a
    loss and are dropped.

    Args:
        in_channels: channels of ``M^v ⊕ M^t ⊕ M^vt``.
        width: working width (128; PCSNet 896).
        bins: pool sizes at a 60 x 60 working resolution.
        upsample: working resolution / token grid (4: 15 -> 60).
        dropout: before the last 1 x 1 conv (PFENet's 0.1).
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 128,
        bins: Sequence[int] = (60, 30, 15, 8),
        upsample: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not bins or any(int(b) < 1 for b in bins):
            raise ValueError(f"seg_bins must be positive pool sizes, got {list(bins)}")
        self.bins = tuple(int(b) for b in bins)
        self.upsample = int(upsample)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True))
        self.init = nn.ModuleList(nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(inplace=True)) for _ in bins)
        self.merge = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * width, width, 1), nn.ReLU(inplace=True)) for _ in self.bins[1:]
        )
        self.refine = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            )
            for _ in bins
        )
        self.fuse = nn.Sequential(nn.Conv2d(width * len(bins), width, 1), nn.ReLU(inplace=True))
        self.residual = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Dropout2d(dropout), nn.Conv2d(width, 1, 1)
        )

    def scaled_bins(self, size: int) -> list[int]:
        """Bins for a working side ``size`` (the defaults are defined at 60)."""
        return [max(1, min(size, round(b * size / 60))) for b in self.bins]

    def forward(self, maps: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """(B, c, h, w) stacked maps -> (B, 1, H, W) raw map ``M^f`` at ``output_size``."""
        work = (maps.shape[2] * self.upsample, maps.shape[3] * self.upsample)
        # NCHW on purpose: channels-last saved 8% of φ's CPU time, but its float-rounding differences,
        # compounded over training, moved the k = 1 golden run's pixel metrics by up to 4e-4.
        x = self.stem(_bilinear(maps, work))
        outs, previous = [], None
        for i, b in enumerate(self.scaled_bins(work[0])):
            y = self.init[i](_resize(x, (b, b), F.adaptive_avg_pool2d))
            if previous is not None:  # fine-to-coarse merge, as PFENet's inter-scale path
                previous = _resize(previous, y.shape[-2:], _bilinear)
                y = self.merge[i - 1](torch.cat([y, previous], dim=1))
            y = y + self.refine[i](y)
            previous = y
            outs.append(_resize(y, work, _bilinear))
        x = self.fuse(torch.cat(outs, dim=1))
        x = x + self.residual(x)
        x = self.head(x)
        return F.interpolate(x, size=output_size, mode="bilinear", align_corners=False)
