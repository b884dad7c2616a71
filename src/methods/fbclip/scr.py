"""SCR: semantic consistency regularisation (entropy + margin on the image-text similarities)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scr_loss(
    image_tokens: torch.Tensor,
    text: torch.Tensor,
    tau: float = 0.07,
    margin: float = 1.0,
    weight: float = 0.15,
    w_entropy: float = 1.0,
    w_margin: float = 0.5,
) -> torch.Tensor:
    """``weight * (w_entropy * H(pi) + w_margin * max(0, margin - |s_1 - s_0|))``, batch-averaged.

    Args:
        image_tokens: (B, N, D) projected tokens of one set (the release uses the last one),
            averaged over all N tokens (CLS included) and L2-normalised.
        text: (2, D) text features (normal, abnormal).

    Returns:
        Scalar loss. ``s = v T^T / tau``, ``pi = softmax(s)``, entropy with ``log(pi + 1e-8)``.
    """
    v = F.normalize(image_tokens.mean(dim=1), dim=-1)
    s = v @ F.normalize(text, dim=-1).t() / tau
    pi = torch.softmax(s, dim=-1)
    entropy = -(pi * torch.log(pi + 1e-8)).sum(dim=-1).mean()
    hinge = F.relu(margin - (s[:, 1] - s[:, 0]).abs()).mean()
    return weight * (w_entropy * entropy + w_margin * hinge)
