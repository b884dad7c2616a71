"""Lightning wrapper of AFR-CLIP: constructor arguments, loss terms, optimiser and schedule."""

from __future__ import annotations

from typing import Any

import torch

from src.contracts import Batch
from src.module import AnomalyModule

from .losses import afr_losses
from .torch_model import AFRCLIPModel


class AFRCLIP(AnomalyModule):
    """AFR-CLIP (AAAI, arXiv 2503.12910) for zero-shot anomaly detection.

    Model arguments are those of :class:`~src.methods.afrclip.torch_model.AFRCLIPModel` (every
    ablation switch of the paper's tables is one). Training arguments:

    Args:
        lr: Adam learning rate (paper 1e-3).
        betas: Adam betas (paper silent; PyTorch defaults, README A11).
        lr_decay: ``inverse_epoch`` (lr / (epoch + 1), the paper) or ``none``.
        focal_gamma: focal-loss exponent.
        eval_sigma: Gaussian sigma of the shared map smoothing.
        image_score_from_map: replace the CLS score by the smoothed map's maximum (off in the paper).
    """

    method_name = "afr"

    def __init__(
        self,
        backbone: str = "ViT-L-14-336-quickgelu",
        pretrained: str = "openai",
        image_size: int = 518,
        layers: list[int] = (6, 12, 18, 24),
        pos_embed_mode: str = "bicubic_once",
        grad_checkpointing: bool | None = None,
        weights_cache_dir: str | None = None,
        use_cmfr: bool = True,
        use_sp: bool = True,
        sp_stages: list[int] = (1,),
        sp_insert: str = "append",
        sp_use_pv: bool = True,
        sp_use_pl: bool = True,
        sp_num_prompts: int = 5,
        sp_source: str = "wide_resnet50_2",
        sp_cnn_pretrained: str = "auto",
        sp_drop_after_last_stage: bool = False,
        mpfa_kernel: int = 3,
        temperature: float = 0.07,
        cmfr_gate: str = "vector",
        cmfr_per_stage: bool = False,
        cmfr_normalize: bool = True,
        prototypes: str = "class",
        lr: float = 1e-3,
        betas: list[float] = (0.9, 0.999),
        lr_decay: str = "inverse_epoch",
        focal_gamma: float = 2.0,
        eval_sigma: float = 4.0,
        image_score_from_map: bool = False,
    ) -> None:
        super().__init__(eval_sigma=eval_sigma, image_score_from_map=image_score_from_map)
        if lr_decay not in {"inverse_epoch", "none"}:
            raise ValueError(f"lr_decay must be 'inverse_epoch' (the paper) or 'none', got {lr_decay!r}")
        if len(betas) != 2:
            raise ValueError(f"betas must be two numbers (Adam's beta1, beta2), got {betas!r}")
        self.save_hyperparameters()
        self.model = AFRCLIPModel(
            backbone=backbone, pretrained=pretrained, image_size=image_size, layers=list(layers),
            pos_embed_mode=pos_embed_mode, grad_checkpointing=grad_checkpointing,
            weights_cache_dir=weights_cache_dir, use_cmfr=use_cmfr, use_sp=use_sp,
            sp_stages=list(sp_stages), sp_insert=sp_insert, sp_use_pv=sp_use_pv, sp_use_pl=sp_use_pl,
            sp_num_prompts=sp_num_prompts, sp_source=sp_source, sp_cnn_pretrained=sp_cnn_pretrained,
            sp_drop_after_last_stage=sp_drop_after_last_stage, mpfa_kernel=mpfa_kernel,
            temperature=temperature, cmfr_gate=cmfr_gate, cmfr_per_stage=cmfr_per_stage,
            cmfr_normalize=cmfr_normalize, prototypes=prototypes,
        )

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The loss terms of one training batch (see ``losses.afr_losses``)."""
        out = self(batch)
        return afr_losses(out.stage_logits, self.model.backbone.grid_size, batch.mask, batch.label,
                          gamma=self.hparams.focal_gamma)

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam over the trainable parameters, with the ``lr_decay`` schedule (per epoch)."""
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.hparams.lr, betas=tuple(self.hparams.betas))
        if self.hparams.lr_decay == "none":
            return {"optimizer": optimizer}
        # The paper: lr = 1e-3 / (epoch + 1), stepped once per epoch.
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0 / (epoch + 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

    def results_meta(self) -> dict[str, Any]:
        """The run's description: backbone, SP source and which frozen parts are random-init."""
        meta = super().results_meta()
        meta.update(self.model.describe())
        # Any random-init frozen part makes the run's numbers meaningless for the method.
        meta["random_init"] = bool(meta.get("random_init")) or bool(meta.get("sp_cnn_random_init"))
        meta["clip_random_init"] = self.model.backbone.random_init
        return meta
