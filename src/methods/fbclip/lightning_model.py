"""Lightning wrapper of FB-CLIP: constructor switches, losses, optimiser."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from src.backbone import CLIPBackbone
from src.contracts import Batch
from src.losses import binary_focal_loss, dice_loss
from src.module import AnomalyModule

from .release import load_release_checkpoint
from .torch_model import RELEASED_LAYERS, FBCLIPModel


class FBCLIP(AnomalyModule):
    """FB-CLIP (``METHOD=fb``), defaults = the released code's configuration.

    Every argument is a plain YAML type so that an ablation row is a config override.

    Args:
        backbone, pretrained, image_size, weights_cache_dir: the frozen CLIP (ViT-L-14-336 with
            OpenAI weights at 518 px as released).
        text_causal_mask: causal mask in the text transformer (the release has none).
        layers: tapped vision blocks, 1-based.
        n_ctx: learnable context vectors per prompt.
        prompt_wording: ``released`` ("object without/with defect.") or ``paper`` ("[V] object." /
            "[W] damaged object.").
        deep_prompt_depth: 0 (release: deep prompts never injected) or e.g. 9 (AnomalyCLIP style).
        text_strategies: MSTFF subset of ``eot``, ``gp``, ``attn`` (supplement Table 1).
        views: MVFBE subset of ``id``, ``sem``, ``spa`` (supplement Table 2).
        fb_attention: shared FB-Attention on/off (supplement Table 2).
        plain_proj_norm: with FB-Attention off, ``ln_post`` (default; CLIP's own projection) or
            ``none`` (raw residual tokens into ``visual.proj``, the suite's behaviour before).
        background_subtraction: BS on/off (incremental table).
        bg_bank: ``half`` (L/2, release) or ``full`` (L) (supplement Table 3).
        bg_candidates: ``index`` (release) or ``score`` (the paper's lowest-score candidates).
        indicator_weights, soft_mask_values, mask_threshold, sem_alpha: MVFBE constants.
        layer_weight_count: softmax layer weights (6 in the release for 5 layers).
        temperature: similarity temperature (0.07).
        fb_heads, fb_head_dim: FB-Attention geometry (8 x 64 as released).
        focal_gamma, dice_weight: loss (binary focal gamma 4 on score and map, 0.2 x Dice).
        scr_weight, scr_tau, scr_margin, scr_w_entropy, scr_w_margin: SCR.
        lr, beta1, beta2: Adam (5e-5, (0.5, 0.999)).
        activation_checkpointing: recompute FB-Attention in backward (CPU memory at batch 4).
        release_checkpoint: path of the authors' ``*_model.pth`` to evaluate (see ``release.py``).
        eval_sigma, image_score_from_map: shared post-processing (:class:`AnomalyModule`).
    """

    method_name = "fb"

    def __init__(
        self,
        backbone: str = "ViT-L-14-336-quickgelu",
        pretrained: str = "openai",
        image_size: int = 518,
        weights_cache_dir: str | None = None,
        text_causal_mask: bool = False,
        layers: list[int] | None = None,
        n_ctx: int = 12,
        prompt_wording: str = "released",
        deep_prompt_depth: int = 0,
        text_strategies: list[str] | None = None,
        views: list[str] | None = None,
        fb_attention: bool = True,
        plain_proj_norm: str = "ln_post",
        background_subtraction: bool = True,
        bg_bank: str = "half",
        bg_candidates: str = "index",
        indicator_weights: list[float] | None = None,
        soft_mask_values: list[float] | None = None,
        mask_threshold: float = 0.5,
        sem_alpha: float = 0.6,
        layer_weight_count: int = 6,
        temperature: float = 0.07,
        fb_heads: int = 8,
        fb_head_dim: int = 64,
        focal_gamma: float = 4.0,
        dice_weight: float = 0.2,
        scr_weight: float = 0.15,
        scr_tau: float = 0.07,
        scr_margin: float = 1.0,
        scr_w_entropy: float = 1.0,
        scr_w_margin: float = 0.5,
        lr: float = 5e-5,
        beta1: float = 0.5,
        beta2: float = 0.999,
        activation_checkpointing: bool = False,
        release_checkpoint: str | None = None,
        eval_sigma: float = 4.0,
        image_score_from_map: bool = False,
    ) -> None:
        super().__init__(eval_sigma=eval_sigma, image_score_from_map=image_score_from_map)
        self.save_hyperparameters()
        clip = CLIPBackbone(
            backbone,
            pretrained,
            image_size=image_size,
            pos_embed_mode="bilinear_per_forward",
            text_causal_mask=text_causal_mask,
            weights_cache_dir=weights_cache_dir,
        )
        self.model = FBCLIPModel(
            clip,
            layers=layers or list(RELEASED_LAYERS),
            n_ctx=n_ctx,
            prompt_wording=prompt_wording,
            deep_prompt_depth=deep_prompt_depth,
            text_strategies=text_strategies or ["eot", "gp", "attn"],
            views=views or ["id", "sem", "spa"],
            fb_attention=fb_attention,
            plain_proj_norm=plain_proj_norm,
            background_subtraction=background_subtraction,
            bg_bank=bg_bank,
            bg_candidates=bg_candidates,
            indicator_weights=indicator_weights or [0.3, 0.3, 0.3, 0.1],
            soft_mask_values=soft_mask_values or [0.5, 1.0],
            mask_threshold=mask_threshold,
            sem_alpha=sem_alpha,
            layer_weight_count=layer_weight_count,
            temperature=temperature,
            heads=fb_heads,
            head_dim=fb_head_dim,
            activation_checkpointing=activation_checkpointing,
            scr_tau=scr_tau,
            scr_margin=scr_margin,
            scr_weight=scr_weight,
            scr_w_entropy=scr_w_entropy,
            scr_w_margin=scr_w_margin,
        )
        self.release_ignored: list[str] = []
        self.release_loaded = bool(release_checkpoint)
        self.release_checkpoint = str(release_checkpoint) if release_checkpoint else None
        if release_checkpoint:
            self.release_ignored = load_release_checkpoint(self.model, release_checkpoint)

    @property
    def is_trainable(self) -> bool:
        # The authors' trained weights are scored as they are: training them further would change
        # what is being evaluated, and `test` must not ask for a checkpoint of ours.
        """False when the authors' released weights are loaded."""
        return super().is_trainable and not self.release_loaded

    def results_meta(self) -> dict[str, Any]:
        """The shared record, plus the authors' checkpoint when its weights are the ones evaluated."""
        meta = super().results_meta()
        if self.release_checkpoint:
            meta["loaded_weights"] = self.release_checkpoint
        return meta

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Focal on the image score + focal and 0.2 Dice on the upsampled map + SCR (as released)."""
        hp = self.hparams
        out = self(batch)
        mask = batch.mask.float()
        label = batch.label.float()
        up = F.interpolate(out.anomaly_map.unsqueeze(1), size=mask.shape[-2:], mode="bilinear",
                           align_corners=False)
        return {
            "focal_image": binary_focal_loss(out.pred_score, label, hp.focal_gamma),
            "focal_pixel": binary_focal_loss(up, mask, hp.focal_gamma),
            "dice": hp.dice_weight * dice_loss(up, mask),
            "scr": self.model.scr(out),
        }

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam (lr, beta1, beta2) over the trainable parameters, no schedule."""
        hp = self.hparams
        return torch.optim.Adam(self.model.trainable_parameters(), lr=hp.lr, betas=(hp.beta1, hp.beta2))
