"""VTFusion's Lightning wiring: per-category preparation, the weighted losses, the optimiser.

One model per category: at ``on_fit_start`` (before the first optimiser step) the model takes the
datamodule's single selected category, embeds its prompts and computes the prototypes from
exactly the k logged shots (``datamodule.reference_batch``). Both are buffers saved in the
checkpoint, so a test run from a checkpoint needs no shots, and a resumed fit keeps them (they are
never rebuilt from trained weights).
"""

from __future__ import annotations

from typing import Any

import torch

from src.contracts import Batch
from src.module import AnomalyModule

from .torch_model import VTFusionModel

try:  # readable prompt nouns (metal_nut -> "metal nut"); the datamodule package may be absent
    from datamodules.names import object_name
except ImportError:  # pragma: no cover - fallback documented in the README

    def object_name(category: str) -> str:
        """Fallback noun for a category when ``datamodules.names`` is absent."""
        return category.replace("_", " ")


class VTFusion(AnomalyModule):
    """VTFusion (few-shot, per category). Every argument is a plain YAML value; see
    :class:`~src.methods.vtfusion.torch_model.VTFusionModel` for the model's arguments.

    Training-only args:
        lambda_seg: λ, weight of L_SEG (40, PCSNet's value, RESOLUTION B11).
        nu: NFC and AFS are divided by ν (1e-3, PCSNet's 1/ν = 1000).
        mix_prob: probability that an item of the segmentation batch is its synthetic version.
        lr_aie: Adam lr of the linear layers, adaptors (and a learnable r) (1e-3).
        lr_other: Adam lr of ATE, the fusion block and φ (1e-4).
        weight_decay, amsgrad: Adam options (PCSNet: 1e-5, True).
        image_score_after_smoothing: image score = max of the smoothed map (PCSNet) instead of
            the max of the raw ``M^f`` (paper, B16).
        eval_sigma: Gaussian sigma of the shared post-processing.
        category: override the category taken from the datamodule (one model per category).
    """

    method_name = "vtfusion"
    #: One model per category: `make train` fits and tests every category in its own subfolder.
    per_category = True

    def __init__(
        self,
        backbone: str = "ViT-B-16-plus-240",
        pretrained: str = "laion400m_e31",
        image_size: int = 240,
        layers: list[int] | None = None,
        pos_embed_mode: str = "bicubic_once",
        linear_init: str = "clip",
        adaptor: str = "coordconv",
        vision_topk: int = 1,
        hinge_topk: int = 1,
        distance: str = "euclidean",
        r: float = 1e-5,
        learnable_r: bool = False,
        alpha: float = 0.1,
        use_ate: bool = True,
        use_aie: bool = True,
        use_mpf: bool = True,
        sam_output: str = "attended",
        fusion_dim: int = 32,
        seg_width: int = 128,
        seg_bins: list[int] | None = None,
        seg_upsample: int = 4,
        prompt_set: str = "ensemble",
        add_normal_state: bool = False,
        logit_scale: float = 100.0,
        lambda_seg: float = 40.0,
        nu: float = 1e-3,
        mix_prob: float = 0.5,
        lr_aie: float = 1e-3,
        lr_other: float = 1e-4,
        weight_decay: float = 1e-5,
        amsgrad: bool = True,
        image_score_after_smoothing: bool = False,
        eval_sigma: float = 4.0,
        category: str | None = None,
    ) -> None:
        super().__init__(eval_sigma=eval_sigma, image_score_from_map=image_score_after_smoothing)
        self.save_hyperparameters()
        if nu <= 0:
            raise ValueError(f"nu must be > 0 (NFC/AFS are divided by it), got {nu}")
        if not 0.0 <= mix_prob <= 1.0:
            raise ValueError(f"mix_prob must be in [0, 1], got {mix_prob}")
        self.model = VTFusionModel(
            backbone=backbone,
            pretrained=pretrained,
            image_size=image_size,
            layers=tuple(layers) if layers is not None else (3, 6, 9, 12),
            pos_embed_mode=pos_embed_mode,
            linear_init=linear_init,
            adaptor=adaptor,
            vision_topk=vision_topk,
            hinge_topk=hinge_topk,
            distance=distance,
            r=r,
            learnable_r=learnable_r,
            alpha=alpha,
            use_ate=use_ate,
            use_aie=use_aie,
            use_mpf=use_mpf,
            sam_output=sam_output,
            fusion_dim=fusion_dim,
            seg_width=seg_width,
            seg_bins=tuple(seg_bins) if seg_bins is not None else (60, 30, 15, 8),
            seg_upsample=seg_upsample,
            prompt_set=prompt_set,
            add_normal_state=add_normal_state,
            logit_scale=logit_scale,
        )
        self.category = category
        self.shot_paths: list[str] = []

    # ------------------------------------------------------------------ per-category preparation
    def prepare_category(self, datamodule: Any) -> None:
        """Text embeddings and frozen prototypes from the datamodule's k logged shots.

        Needs ``datamodule.categories`` (exactly one, or ``category`` set) and
        ``datamodule.reference_batch(category) -> Batch`` (``image`` (k, 3, S, S), ``path``).
        """
        category = self.category
        if category is None:
            categories = list(getattr(datamodule, "categories", None) or [])
            if len(categories) != 1:
                raise ValueError(
                    f"VTFusion trains one model per category but the datamodule selects {categories or 'none'}; "
                    "set data.init_args.categories to one category (the launcher loops over them) or "
                    "model.init_args.category"
                )
            category = categories[0]
        if not hasattr(datamodule, "reference_batch"):
            raise TypeError(
                f"{type(datamodule).__name__} has no reference_batch(category): VTFusion needs the k-shot "
                "protocol (data.init_args.protocol: k-shot)"
            )
        reference = datamodule.reference_batch(category)
        shots = reference.image.to(self.device)
        self.category = category
        self.shot_paths = [str(p) for p in reference.path]
        self.model.set_text(object_name(category))
        self.model.set_prototypes(shots)

    def on_fit_start(self) -> None:
        """Prepare the category, unless the prototypes were restored from a checkpoint.

        Prototypes and ``m_v`` are built once, from the weights before the first optimiser step.
        A resumed fit (``RESUME=``) restores them with the checkpoint's buffers; rebuilding them
        here would use the trained weights and change the model being resumed.
        """
        if bool(self.model.prepared.all()):
            self._check_restored_category(self.trainer.datamodule)
            return
        self.prepare_category(self.trainer.datamodule)

    def _check_restored_category(self, datamodule: Any) -> None:
        selected = list(getattr(datamodule, "categories", None) or [])
        if self.category is not None and selected and selected != [self.category]:
            raise ValueError(
                f"the checkpoint's VTFusion prototypes belong to category {self.category!r} but the datamodule "
                f"selects {selected}; resume with data.init_args.categories=[{self.category}]"
            )

    # ------------------------------------------------------------------ forward and losses
    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The loss terms of one batch; needs DAS's ``synthetic_image`` and ``synthetic_mask``."""
        if batch.synthetic_image is None or batch.synthetic_mask is None:
            raise KeyError(
                "training batch has no synthetic_image/synthetic_mask: VTFusion trains on DAS anomalies; set "
                "data.init_args.sample_hook: src.methods.vtfusion.das.DASHook"
            )
        image = batch.image
        use_synthetic = torch.rand(image.shape[0], device=image.device) < self.hparams.mix_prob
        terms = self.model.losses(image, batch.synthetic_image, batch.synthetic_mask, use_synthetic)
        weighted = {"seg": self.hparams.lambda_seg * terms["seg"]}
        for name in ("nfc", "afs"):
            if name in terms:
                weighted[name] = terms[name] / self.hparams.nu
        return weighted

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam (amsgrad) with two groups: ``lr_aie`` for the linears and adaptors, ``lr_other`` for the rest."""
        groups = self.model.parameter_groups()
        lrs = {"aie": self.hparams.lr_aie, "other": self.hparams.lr_other}
        param_groups = [{"params": params, "lr": lrs[name], "name": name} for name, params in groups.items() if params]
        return torch.optim.Adam(param_groups, weight_decay=self.hparams.weight_decay, amsgrad=self.hparams.amsgrad)

    # ------------------------------------------------------------------ results and checkpoints
    def results_meta(self) -> dict[str, Any]:
        """The run's description, with the category, its shots and the loss weights."""
        meta = super().results_meta()
        hp = self.hparams
        meta.update(
            {
                "category": self.category,
                "k_shot": len(self.shot_paths),
                "shots": list(self.shot_paths),
                "lambda_seg": hp.lambda_seg,
                "nu": hp.nu,
                "r": float(self.model.r.detach()),
                "alpha": hp.alpha,
                "use_ate": hp.use_ate,
                "use_aie": hp.use_aie,
                "use_mpf": hp.use_mpf,
                "image_score": "max_smoothed_map" if hp.image_score_after_smoothing else "max_raw_map",
            }
        )
        return meta

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the category and its shots beside the weights."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["vtfusion"] = {"category": self.category, "shots": list(self.shot_paths)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the category and its shots saved by :meth:`on_save_checkpoint`."""
        super().on_load_checkpoint(checkpoint)
        extra = checkpoint.get("vtfusion", {})
        self.category = extra.get("category", self.category)
        self.shot_paths = list(extra.get("shots", self.shot_paths))
