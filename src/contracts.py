"""The typed data contract between the DataModules, the methods and the callbacks.

Three records, each a plain (mutable) dataclass so that Lightning moves them between devices field
by field (``apply_to_collection`` rebuilds dataclasses; frozen ones are refused):

* :class:`Batch`: what a DataModule loader yields (``datamodules.collate.collate_batch``).
* :class:`MethodOutput`: what every method's pure ``torch_model`` returns from
  ``forward(images, categories)``; a method subclasses it for the intermediate results its losses
  need (AFR-CLIP's per-stage logits, FB-CLIP's token sets, ...).
* :class:`EvaluationOutput`: what ``AnomalyModule.validation_step`` / ``test_step`` hand to the
  callbacks: post-processed map, score, and the batch they belong to.

Shapes: ``B`` images per batch, input side ``S``, a method's native map grid ``h x w``, mask
resolution ``H x W`` (= ``S x S`` for the DataModules of this suite).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    """One batch of the evaluated or training data.

    Attributes:
        image: float32 (B, 3, S, S), CLIP-normalised RGB.
        mask: float32 (B, 1, S, S) in {0, 1}; all zero for normal images.
        label: int64 (B,), 0 normal, 1 anomalous.
        category: B category names, e.g. ``"metal_nut"`` (selects prompts and k-shot memories).
        defect_type: B defect names, ``"good"`` for normal images.
        path: B image file paths.
        index: int64 (B,), position in the loader's dataset (de-duplication under DDP).
        has_mask: bool (B,), False for an anomalous image without ground truth (pixel metrics skip it).
        synthetic_image: float32 (B, 3, S, S) or None: a train-time synthesised anomalous version of
            ``image`` (set by a sample hook, e.g. VTFusion's DAS).
        synthetic_mask: float32 (B, 1, S, S) in {0, 1} or None: where ``synthetic_image`` was edited.
    """

    image: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    category: list[str]
    defect_type: list[str]
    path: list[str]
    index: torch.Tensor
    has_mask: torch.Tensor
    synthetic_image: torch.Tensor | None = None
    synthetic_mask: torch.Tensor | None = None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every field, in declaration order (the one list of batch fields)."""
        return tuple(f.name for f in fields(cls))

    @property
    def size(self) -> int:
        """B, the number of images."""
        return int(self.image.shape[0])


@dataclass
class MethodOutput:
    """What a method's ``torch_model.forward(images, categories)`` returns.

    Attributes:
        anomaly_map: (B, h, w) raw per-pixel anomaly scores on the method's own grid (not squashed,
            not smoothed: the shared post-processing upsamples and smooths).
        pred_score: (B,) raw image-level anomaly scores.
    """

    anomaly_map: torch.Tensor
    pred_score: torch.Tensor


@dataclass
class EvaluationOutput:
    """What ``validation_step`` / ``test_step`` return to the callbacks.

    Attributes:
        anomaly_map: (B, H, W) post-processed map at the mask's resolution.
        pred_score: (B,) image score (raw, or the smoothed map's maximum where configured).
        batch: the evaluated batch (labels, masks, categories, paths, indices).
    """

    anomaly_map: torch.Tensor
    pred_score: torch.Tensor
    batch: Batch
