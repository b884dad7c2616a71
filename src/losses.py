"""Segmentation and classification losses shared by the methods.

All functions take probabilities, not logits, because that is what the released code bases
feed them (a softmax over {normal, abnormal} computed by the method).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_focal_loss(prob: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean of ``BCE(p, y) * (1 - p_t) ** gamma`` on probabilities (no alpha).

    ``BCE`` clamps its logarithms at -100 as PyTorch does, so a saturated probability gives a
    large but finite loss.

    Args:
        prob: any shape, values in [0, 1].
        target: same shape, values in {0, 1}.
    """
    target = target.to(prob.dtype)
    bce = F.binary_cross_entropy(prob, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    return (bce * (1 - p_t).pow(gamma)).mean()


def softmax_focal_loss(
    probs: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, smooth: float = 1e-5
) -> torch.Tensor:
    """Focal loss on a 2-channel probability map, as AnomalyCLIP/AdaCLIP's ``FocalLoss``.

    The one-hot target is smoothed into ``[smooth / (C - 1), 1 - smooth]`` before picking the
    probability of the true class; no alpha.

    Args:
        probs: (B, C, H, W) class probabilities (softmax over C).
        target: (B, 1, H, W) or (B, H, W) integer class map (here: the binary mask).
    """
    if target.dim() == probs.dim():
        target = target[:, 0]
    num_classes = probs.shape[1]
    one_hot = F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    one_hot = one_hot.clamp(smooth / (num_classes - 1), 1.0 - smooth)
    pt = (one_hot * probs).sum(dim=1) + smooth
    return (-(1 - pt).pow(gamma) * pt.log()).mean()


def dice_loss(prob: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """``1 - mean_b (2 sum(XY) + s) / (sum(X) + sum(Y) + s)`` per image, averaged over the batch.

    Args:
        prob: (B, ...) predicted foreground probability.
        target: (B, ...) binary target of the same number of elements per image.
    """
    p = prob.reshape(prob.shape[0], -1)
    t = target.reshape(target.shape[0], -1).to(p.dtype)
    score = (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return 1 - score.mean()
