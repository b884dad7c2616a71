"""AFR-CLIP's training loss (the paper states none; our resolution from its lineage, see the README).

Per stage s, with the two-channel probability map ``Q^s`` upsampled to the mask and mask G:

    L_pix^s = Focal(Q^s, G) + Dice(Q^s_abnormal, G) + Dice(Q^s_normal, 1 - G)
    L       = mean_s CE(CLS^s, label) + sum_s L_pix^s

Focal (gamma 2, label smoothing 1e-5, no alpha) and dice are the shared implementations of
AnomalyCLIP/AdaCLIP's losses; the image term is AnomalyCLIP's cross-entropy on the CLS logits.
Losses are taken per stage before any averaging, as AdaCLIP trains each hierarchy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.losses import dice_loss, softmax_focal_loss


def stage_maps(logits: torch.Tensor, grid_size: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Two-channel probability map of one stage at the mask size.

    Args:
        logits: (B, 1 + L, 2) scoring logits, CLS first.
        grid_size: (gh, gw) with gh * gw = L.
        size: (H, W) output size.

    Returns:
        (B, 2, H, W) probabilities (channel 0 normal, 1 abnormal), bilinearly upsampled.
    """
    gh, gw = grid_size
    probs = logits[:, 1:].softmax(dim=-1).transpose(1, 2).reshape(logits.shape[0], 2, gh, gw)
    if (gh, gw) == tuple(size):
        return probs
    return F.interpolate(probs, size=size, mode="bilinear", align_corners=False)


def afr_losses(stage_logits: list[torch.Tensor], grid_size: tuple[int, int], mask: torch.Tensor,
               label: torch.Tensor, gamma: float = 2.0) -> dict[str, torch.Tensor]:
    """The weighted loss terms (their sum is the training loss).

    Args:
        stage_logits: per stage (B, 1 + L, 2) logits, token 0 the stage's CLS token.
        grid_size: patch grid (gh, gw).
        mask: (B, 1, H, W) binary ground truth.
        label: (B,) image labels, 0 normal / 1 anomalous.
        gamma: focal exponent.

    Returns:
        ``image_ce`` (mean over stages), ``focal``, ``dice_abnormal``, ``dice_normal`` (sums over
        stages).
    """
    size = tuple(mask.shape[-2:])
    target = mask[:, 0] if mask.dim() == 4 else mask
    image_ce, focal, dice_abn, dice_nrm = [], [], [], []
    for logits in stage_logits:
        image_ce.append(F.cross_entropy(logits[:, 0].float(), label.long()))
        q = stage_maps(logits.float(), grid_size, size)
        focal.append(softmax_focal_loss(q, target, gamma=gamma))
        dice_abn.append(dice_loss(q[:, 1], target))
        dice_nrm.append(dice_loss(q[:, 0], 1 - target))
    return {
        "image_ce": torch.stack(image_ce).mean(),
        "focal": torch.stack(focal).sum(),
        "dice_abnormal": torch.stack(dice_abn).sum(),
        "dice_normal": torch.stack(dice_nrm).sum(),
    }
