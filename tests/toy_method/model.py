"""The toy method: one linear score per patch token of one block of a frozen CLIP, trained with BCE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from src.backbone import CLIPBackbone
from src.contracts import Batch, MethodOutput
from src.module import AnomalyModule


@dataclass
class ToyOutput(MethodOutput):
    """Adds the per-patch logits (B, g, g) the BCE loss reads."""

    logits: torch.Tensor | None = None


class ToyModel(nn.Module):
    """Frozen backbone, a trainable ``Linear(width, 1)`` on the patch tokens of block ``layer``."""

    def __init__(self, backbone: CLIPBackbone, layer: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.layer = layer
        self.head = nn.Linear(backbone.width, 1)

    def forward(self, images: torch.Tensor, categories: list[str]) -> ToyOutput:
        """images (B, 3, S, S) -> anomaly_map (B, g, g) logits, pred_score (B,) their maximum."""
        tokens = self.backbone.encode_image_layers(images, [self.layer])[0][:, 1:]
        g = self.backbone.grid_size[0]
        logits = self.head(tokens).squeeze(-1).reshape(images.shape[0], g, g)
        return ToyOutput(anomaly_map=logits.sigmoid(), pred_score=logits.flatten(1).amax(1).sigmoid(), logits=logits)


class ToyMethod(AnomalyModule):
    """``METHOD=toy``. Args as every method: backbone, pretrained, image_size, layers (last one used)."""

    method_name = "toy"

    def __init__(self, backbone: str = "tiny-vit", pretrained: str = "none", image_size: int = 64,
                 layers: list[int] | None = None, pos_embed_mode: str = "bicubic_once", lr: float = 1e-2,
                 eval_sigma: float = 4.0) -> None:
        super().__init__(eval_sigma=eval_sigma)
        self.save_hyperparameters()
        clip = CLIPBackbone(backbone, pretrained, image_size, pos_embed_mode=pos_embed_mode)
        clip.requires_grad_(False)
        self.model = ToyModel(clip, (layers or [clip.num_layers])[-1])
        self.lr = lr

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits = self(batch).logits
        target = F.adaptive_max_pool2d(batch.mask.float().reshape(-1, 1, *batch.mask.shape[-2:]),
                                       logits.shape[-2:]).squeeze(1)
        return {"bce": F.binary_cross_entropy_with_logits(logits, target)}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.head.parameters(), lr=self.lr)
