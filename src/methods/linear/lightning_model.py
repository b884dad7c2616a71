"""Lightning wrapper of the linear probe: constructor arguments, loss terms, optimiser."""

from __future__ import annotations

import math
from typing import Any

import torch

from src.contracts import Batch
from src.module import AnomalyModule

from .losses import linear_losses
from .torch_model import LinearProbeModel


class LinearProbe(AnomalyModule):
    """Linear-probe baseline (``METHOD=linear``): APRIL-GAN's per-tap linear adapters.

    Model arguments are those of :class:`~src.methods.linear.torch_model.LinearProbeModel`.
    Training arguments:

    Args:
        lr: Adam learning rate (APRIL-GAN 1e-3).
        betas: Adam betas (APRIL-GAN (0.5, 0.999)).
        lr_schedule: ``constant`` (APRIL-GAN) or ``cosine``: before optimiser step ``k`` of ``T``
            (the run's ``estimated_stepping_batches``) the rate is ``lr * (1 + cos(pi * k / T)) / 2``.
        focal_gamma: focal-loss exponent.
        eval_sigma: Gaussian sigma of the shared map smoothing.
        image_score_from_map: the image score is the maximum of the smoothed map. The probe has no
            other image score, so ``False`` is refused.
    """

    method_name = "linear"

    def __init__(
        self,
        backbone: str = "ViT-L-14-336-quickgelu",
        pretrained: str = "openai",
        image_size: int = 518,
        layers: list[int] = (6, 12, 18, 24),
        logit_scale: float = 100.0,
        pos_embed_mode: str = "bicubic_once",
        weights_cache_dir: str | None = None,
        lr: float = 1e-3,
        betas: list[float] = (0.5, 0.999),
        lr_schedule: str = "constant",
        focal_gamma: float = 2.0,
        eval_sigma: float = 4.0,
        image_score_from_map: bool = True,
    ) -> None:
        if not image_score_from_map:
            raise ValueError("image_score_from_map must be true for METHOD=linear: the probe has no image "
                             "score besides the maximum of its smoothed map")
        if len(betas) != 2:
            raise ValueError(f"betas must be two numbers (Adam's beta1, beta2), got {betas!r}")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' (APRIL-GAN) or 'cosine' (decay to 0 over the run's "
                             f"steps), got {lr_schedule!r}")
        super().__init__(eval_sigma=eval_sigma, image_score_from_map=True)
        self.save_hyperparameters()
        self.model = LinearProbeModel(
            backbone=backbone, pretrained=pretrained, image_size=image_size, layers=list(layers),
            logit_scale=logit_scale, pos_embed_mode=pos_embed_mode, weights_cache_dir=weights_cache_dir,
        )

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The loss terms of one training batch (see ``losses.linear_losses``)."""
        out = self(batch)
        return linear_losses(out.layer_logits, self.model.backbone.grid_size, batch.mask,
                             gamma=self.hparams.focal_gamma)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        """Adam over the linear layers; with ``lr_schedule=cosine`` a per-step cosine decay to 0."""
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr, betas=tuple(self.hparams.betas))
        if self.hparams.get("lr_schedule", "constant") == "constant":
            return optimizer
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total) or total < 1:
            raise ValueError("lr_schedule=cosine needs a run of known length: set --trainer.max_epochs or "
                             f"--trainer.max_steps (estimated steps: {total})")
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_test_start(self) -> None:
        """Drop the cached text embeddings (the categories of this test run may differ)."""
        self.model.clear_caches()

    def results_meta(self) -> dict[str, Any]:
        """The run's description, with the tapped layers."""
        meta = super().results_meta()
        meta["layers"] = self.model.layers
        return meta
