"""The linear probe's loss, APRIL-GAN's: per tap, on the two-state map upsampled to the mask,

    L = sum_s Focal(Q^s, G) + Dice(Q^s_abnormal, G) + Dice(Q^s_normal, 1 - G)

where ``Q^s`` is the softmax of the bilinearly upsampled logits (APRIL-GAN upsamples the logits with
``align_corners=True``, then takes the softmax). Focal: gamma 2, label smoothing 1e-5, no alpha.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.losses import dice_loss, softmax_focal_loss


def upsampled_probs(logits: torch.Tensor, grid_size: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """(B, L, 2) patch logits -> (B, 2, H, W) probabilities at the mask size."""
    gh, gw = grid_size
    grid = logits.transpose(1, 2).reshape(logits.shape[0], 2, gh, gw)
    grid = F.interpolate(grid, size=size, mode="bilinear", align_corners=True)
    return grid.softmax(dim=1)


def linear_losses(layer_logits: list[torch.Tensor], grid_size: tuple[int, int], mask: torch.Tensor,
                  gamma: float = 2.0) -> dict[str, torch.Tensor]:
    """The loss terms, each summed over taps (their sum is the training loss).

    Args:
        layer_logits: per tap (B, L, 2) logits.
        grid_size: patch grid (gh, gw).
        mask: (B, 1, H, W) or (B, H, W) binary ground truth.
        gamma: focal exponent.

    Returns:
        ``focal``, ``dice_abnormal``, ``dice_normal``.
    """
    target = mask[:, 0] if mask.dim() == 4 else mask
    size = tuple(target.shape[-2:])
    focal, dice_abn, dice_nrm = [], [], []
    for logits in layer_logits:
        q = upsampled_probs(logits.float(), grid_size, size)
        focal.append(softmax_focal_loss(q, target, gamma=gamma))
        dice_abn.append(dice_loss(q[:, 1], target))
        dice_nrm.append(dice_loss(q[:, 0], 1 - target))
    return {"focal": torch.stack(focal).sum(), "dice_abnormal": torch.stack(dice_abn).sum(),
            "dice_normal": torch.stack(dice_nrm).sum()}
