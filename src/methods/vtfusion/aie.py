"""AIE: adaptive image-feature extraction, prototypes, nearest-prototype distances, NFC/AFS losses.

Per stage l, frozen CLIP tokens (B, L, C) go through the frozen ``ln_post`` and a trainable linear
layer initialised from CLIP's ``visual.proj`` (so the text-guided map starts as zero-shot CLIP,
RESOLUTION B3), then the feature adaptor of PCSNet's descriptor: 3 x 3 average pool + 1 x 1
CoordConv, identity-initialised (RESOLUTION B4). The stacked stages ``F^v`` (B, L, l·D) are
compared with per-location prototypes ``P`` (L, l·D), the mean over the k shots computed once
before training (Eq. 1, RESOLUTION B5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .nearest import CDIST_MODE, PrototypeNorms, screened_cdist

ADAPTORS = ("coordconv", "conv3x3")
DISTANCES = ("euclidean", "squared")


class StageLinear(nn.Module):
    """Frozen ``ln_post`` then a trainable ``C -> D`` linear layer.

    Args:
        ln_post: CLIP's (frozen) final vision LayerNorm, shared with the backbone.
        proj: (C, D) CLIP visual projection used to initialise the weight (``init="clip"``).
        init: ``clip`` (RESOLUTION B3) or ``random`` (APRIL-GAN's default init).
    """

    def __init__(self, ln_post: nn.Module, proj: torch.Tensor, init: str = "clip") -> None:
        super().__init__()
        if init not in ("clip", "random"):
            raise ValueError(f"linear_init must be 'clip' or 'random', got {init!r}")
        width, dim = proj.shape
        # A plain attribute list keeps the shared LayerNorm out of this module's parameters.
        self._ln_post = [ln_post]
        self.linear = nn.Linear(width, dim)
        if init == "clip":
            with torch.no_grad():
                self.linear.weight.copy_(proj.detach().t())
                self.linear.bias.zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, C) patch tokens -> (B, L, D)."""
        return self.linear(self._ln_post[0](tokens))


def coordinate_channels(batch: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 2, h, w) x and y coordinates in [-1, 1] (CoordConv)."""
    ys = torch.linspace(-1.0, 1.0, h, device=like.device, dtype=like.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=like.device, dtype=like.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y]).unsqueeze(0).expand(batch, -1, -1, -1)


class FeatureAdaptor(nn.Module):
    """PCSNet's descriptor form: 3 x 3 average pool then a 1 x 1 CoordConv, identity at init.

    The pool ignores the zero pads (``count_include_pad=False``), a declared deviation from PCSNet
    whose pool counts them and so darkens the border features (spec B4).

    Args:
        dim: feature channels D.
        kind: ``coordconv`` (default) or ``conv3x3`` (a plain 3 x 3 conv, identity at its centre tap).
    """

    def __init__(self, dim: int, kind: str = "coordconv") -> None:
        super().__init__()
        if kind not in ADAPTORS:
            raise ValueError(f"adaptor must be one of {list(ADAPTORS)}, got {kind!r}")
        self.kind = kind
        if kind == "coordconv":
            self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
            self.conv = nn.Conv2d(dim + 2, dim, kernel_size=1)
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.weight[:, :dim, 0, 0].copy_(torch.eye(dim))
                self.conv.bias.zero_()
        else:
            self.pool = nn.Identity()
            self.conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1)
            with torch.no_grad():
                self.conv.weight.zero_()
                self.conv.weight[:, :, 1, 1].copy_(torch.eye(dim))
                self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> (B, D, h, w)."""
        x = self.pool(x)
        if self.kind == "coordconv":
            x = torch.cat([x, coordinate_channels(x.shape[0], x.shape[2], x.shape[3], x)], dim=1)
        return self.conv(x)


def prototypes_from_features(features: torch.Tensor) -> torch.Tensor:
    """Eq. 1: per-location mean over the k shots. (k, L, C) -> (L, C)."""
    if features.dim() != 3 or features.shape[0] < 1:
        raise ValueError(f"prototype features must be (k >= 1, L, C), got {tuple(features.shape)}")
    return features.mean(dim=0)


def prototype_distances(
    features: torch.Tensor,
    prototypes: torch.Tensor,
    topk: int = 1,
    distance: str = "euclidean",
    norms: PrototypeNorms | None = None,
) -> torch.Tensor:
    """The ``topk`` smallest distances from every location to every prototype, ascending.

    Direct differences (``donot_use_mm``), not the expanded ‖a‖² + ‖p‖² − 2a·p form whose fp32
    cancellation is as large as the AFS margin; a feature on its prototype gets
    an exact 0 and ``cdist``'s backward gives it a zero, not NaN, gradient.

    Args:
        features: (B, L, C).
        prototypes: (N, C).
        topk: how many nearest distances to keep (1 = Eq. 5's nearest distance).
        distance: ``euclidean`` (Eq. 2 literally) or ``squared``.
        norms: the model's prototype cache; with it and without autograd, only the candidate pairs
            of a float64 screen go through ``cdist`` (``nearest.py``: the same values, bit for bit).

    Returns:
        (B, L, topk).
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {list(DISTANCES)}, got {distance!r}")
    if not 1 <= topk <= prototypes.shape[0]:
        raise ValueError(
            f"vision_topk/hinge_topk={topk} must be in 1..{prototypes.shape[0]} (the number of prototypes)"
        )
    protos = prototypes.to(features.dtype)
    d = None
    if norms is not None and not torch.is_grad_enabled():
        d = screened_cdist(features, protos, topk, norms)
    if d is None:
        d = torch.cdist(features, protos.unsqueeze(0).expand(features.shape[0], -1, -1), compute_mode=CDIST_MODE)
    if distance == "squared":
        d = d.square()
    if topk == 1:
        return d.min(dim=-1, keepdim=True).values
    return d.topk(topk, dim=-1, largest=False, sorted=True).values


def nfc_loss(distances: torch.Tensor, r: torch.Tensor | float) -> torch.Tensor:
    """Eq. 3, normal feature compactness: mean of ``max(0, d - r²)`` over all normal locations.

    Args:
        distances: (B, L, k) nearest distances of normal images (k > 1 averages PCSNet's top-k).
        r: compactness radius (1e-5).
    """
    return F.relu(distances - r**2).mean()


def afs_loss(distances: torch.Tensor, anomalous: torch.Tensor, r: torch.Tensor | float, alpha: float) -> torch.Tensor:
    """Eq. 4, abnormal feature separation: mean of ``max(0, (r + α)² - d)`` over anomalous locations.

    Averaged over anomalous locations only (RESOLUTION B10: Eq. 4's mean over all locations would
    dilute it by the normal ones); 0 when there are none.

    Args:
        distances: (B, L, k) nearest distances of synthetic images.
        anomalous: (B, L) bool, the synthetic mask down-sampled to the grid.
        r: compactness radius.
        alpha: separation margin (0.1).
    """
    hinge = F.relu((r + alpha) ** 2 - distances).mean(dim=-1)
    weight = anomalous.to(hinge.dtype)
    count = weight.sum()
    if count == 0:
        return hinge.sum() * 0.0  # keeps the graph (and DDP's unused-parameter check) intact
    return (hinge * weight).sum() / count


def grid_mask(mask: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Area down-sampling of a pixel mask to the token grid, thresholded at 0.5. (B, 1, H, W) -> (B, h·w) bool."""
    return F.adaptive_avg_pool2d(mask.float(), grid).flatten(1) >= 0.5
