"""Streaming, distributed-aware accumulator of every image- and pixel-level metric.

Image level: scores are few, so they are kept exactly and the metrics are exact.

Pixel level, two passes so that memory does not grow with the number of pixels:

1. :meth:`AnomalyMetrics.update` appends each map and bit-packed mask to a per-rank spill file
   (:mod:`src.metrics.spill`).
2. :meth:`AnomalyMetrics.compute` agrees with the other ranks on which samples count (the
   distributed sampler pads shards with repeated samples; the first occurrence of an ``index``
   wins) and on each category's score range ``[min, max]``, then streams its spill files once
   into per-(category, defect group) histograms (:mod:`src.metrics.pixel_histograms`).

Scores are binned on their own range, never squashed (no sigmoid, no clamping), so unbounded
regression outputs and distances work as well as probabilities.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from src.metrics import curves
from src.metrics.distributed import all_gather_object, rank_and_world
from src.metrics.pixel_histograms import NORMAL_GROUP, PixelHistograms
from src.metrics.spill import SpillStore
from src.metrics.undefined import warn_undefined

IMAGE_METRICS = ("image_auroc", "image_ap", "image_f1max")
PIXEL_METRICS = ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro")
METRICS = IMAGE_METRICS + PIXEL_METRICS
AUPRO_VARIANTS = ("exact", "anomalyclip")

#: Defect group of anomalous images whose dataset has no defect type (empty string).
UNNAMED_DEFECT = "anomalous"


def _to_numpy(x: Any, dtype: Any | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
            x = x.float()
        x = x.cpu().numpy()
    out = np.asarray(x)
    return out.astype(dtype, copy=False) if dtype is not None else out


class AnomalyMetrics:
    """Accumulates predictions batch by batch and computes the suite's metrics per category.

    Works without Lightning and without torch.distributed; when a process group is initialised,
    each rank updates with its own shard and :meth:`compute` returns the same result on every rank.

    Args:
        aupro_variant: ``"exact"`` (the MVTec AD definition, the default) or ``"anomalyclip"``
            (the 200-threshold code of AnomalyCLIP / FB-CLIP, to compare with their tables).
        num_bins: linear bins per category for the pixel histograms.
        spill_dir: where the per-rank temporary spill directory is created (``None``: the system's
            temporary directory). It is deleted by :meth:`compute` / :meth:`close`.
        chunk_pixels: pixels binned per step in pass 2 (bounds the working memory).
    """

    def __init__(
        self,
        aupro_variant: str = "exact",
        num_bins: int = 2**20,
        spill_dir: str | None = None,
        chunk_pixels: int = 2**23,
    ) -> None:
        if aupro_variant not in AUPRO_VARIANTS:
            raise ValueError(f"aupro_variant={aupro_variant!r} is not valid; choose one of {AUPRO_VARIANTS}")
        if not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an integer >= 2, got {num_bins!r}")
        if chunk_pixels < 1:
            raise ValueError(f"chunk_pixels must be >= 1, got {chunk_pixels}")
        self.aupro_variant = aupro_variant
        self.num_bins = num_bins
        self.chunk_pixels = chunk_pixels
        self._spill = SpillStore(spill_dir)
        self._scores: list[float] = []
        self._labels: list[int] = []
        self._categories: list[str] = []
        self._groups: list[str] = []
        self._indices: list[int] = []
        self._sizes: set[tuple[int, int]] = set()
        self._busy_s = 0.0
        self._computed = False

    # ------------------------------------------------------------------ pass 1
    def update(
        self,
        anomaly_map: torch.Tensor | np.ndarray,
        pred_score: torch.Tensor | np.ndarray,
        mask: torch.Tensor | np.ndarray,
        label: torch.Tensor | np.ndarray | Sequence[int],
        category: Sequence[str],
        defect_type: Sequence[str],
        index: torch.Tensor | np.ndarray | Sequence[int] | None,
        has_mask: torch.Tensor | np.ndarray | Sequence[bool] | None = None,
        path: Sequence[str] | None = None,
    ) -> None:
        """Add one batch.

        Args:
            anomaly_map: (B, H, W) post-processed maps, any real values.
            pred_score: (B,) image scores, any real values.
            mask: (B, H, W) or (B, 1, H, W) ground truth in {0, 1} (binarised at 0.5).
            label: (B,) 0 normal / 1 anomalous.
            category, defect_type: B strings each.
            index: (B,) position of each sample in the evaluated dataset; used to drop the
                duplicates of distributed padding. ``None`` numbers samples in arrival order
                (single process only).
            has_mask: (B,) bool; images without pixel ground truth count at image level only.
            path: B strings, only used to name a bad sample in errors.
        """
        if self._computed:
            raise RuntimeError("AnomalyMetrics: compute() was already called; use a new instance per evaluation")
        start = time.perf_counter()
        maps, scores, masks, labels = _checked_arrays(anomaly_map, pred_score, mask, label)
        B = scores.shape[0]
        category, defect_type = list(category), list(defect_type)
        for name, seq in (("category", category), ("defect_type", defect_type)):
            if len(seq) != B:
                raise ValueError(f"{name} must have {B} entries (one per image), got {len(seq)}")
        indices, keep_pixels = self._positions(index, has_mask, B)
        paths = list(path) if path is not None else [f"<sample index {i}>" for i in indices]
        self._check_finite(maps, scores, category, paths)

        for b in range(B):
            position = len(self._scores)
            group = NORMAL_GROUP if labels[b] == 0 else (str(defect_type[b]) or UNNAMED_DEFECT)
            self._scores.append(float(scores[b]))
            self._labels.append(int(labels[b]))
            self._categories.append(str(category[b]))
            self._groups.append(group)
            self._indices.append(int(indices[b]))
            if keep_pixels[b]:
                self._spill.append(str(category[b]), position, group, maps[b], masks[b] > 0.5)
                self._sizes.add(maps.shape[1:])
        self._busy_s += time.perf_counter() - start

    def _positions(self, index: Any, has_mask: Any, B: int) -> tuple[np.ndarray, np.ndarray]:
        """(B,) dataset positions and (B,) whether each image's pixels count."""
        if index is None:
            if rank_and_world()[1] > 1:
                raise ValueError("index is required under torch.distributed to drop padded duplicates")
            indices = np.arange(len(self._indices), len(self._indices) + B)
        else:
            indices = _to_numpy(index).reshape(-1).astype(np.int64)
            if indices.shape[0] != B:
                raise ValueError(f"index must have {B} entries (one per image), got {indices.shape[0]}")
        keep_pixels = np.ones(B, dtype=bool)
        if has_mask is not None:
            keep_pixels = _to_numpy(has_mask).reshape(-1).astype(bool)
            if keep_pixels.shape[0] != B:
                raise ValueError(f"has_mask must have {B} entries (one per image), got {keep_pixels.shape[0]}")
        return indices, keep_pixels

    @staticmethod
    def _check_finite(maps: np.ndarray, scores: np.ndarray, category: list[str], paths: list[str]) -> None:
        bad_map = ~np.isfinite(maps).reshape(maps.shape[0], -1).all(axis=1)
        bad_score = ~np.isfinite(scores)
        for name, bad in (("anomaly_map", bad_map), ("pred_score", bad_score)):
            if bad.any():
                b = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"non-finite {name} (NaN or inf) in category {category[b]!r}, "
                    f"first bad sample {paths[b]!r}; "
                    "metrics need finite scores (check the model output for overflow or a 0/0)"
                )

    # ------------------------------------------------------------------ pass 2
    def compute(self) -> dict[str, Any]:
        """Metrics in the ``metrics.json`` shape; undefined values are ``nan``. Deletes the spill files.

        Collective under torch.distributed: every rank must call it.
        """
        if self._computed:
            raise RuntimeError("AnomalyMetrics: compute() was already called; use a new instance per evaluation")
        start = time.perf_counter()
        self._computed = True
        try:
            result = self._compute()
        finally:
            self._spill.close()
        self._busy_s += time.perf_counter() - start
        busy = all_gather_object(self._busy_s)
        result["meta"]["wall_s"] = round(max(busy), 3)  # ranks work in parallel
        return result

    def close(self) -> None:
        """Delete the spill files without computing (e.g. after an exception)."""
        self._spill.close()

    def _deduplicate(self) -> tuple[dict[str, np.ndarray], set[int]]:
        """All ranks' samples with duplicates removed, and this rank's positions to skip."""
        rank, _ = rank_and_world()
        gathered = all_gather_object(
            (self._indices, self._scores, self._labels, self._categories, self._groups)
        )
        seen: set[int] = set()
        keep_all: list[tuple[float, int, str, str, int]] = []
        skip: set[int] = set()
        for r, (indices, scores, labels, cats, groups) in enumerate(gathered):
            for pos, idx in enumerate(indices):
                if idx in seen:
                    if r == rank:
                        skip.add(pos)
                    continue
                seen.add(idx)
                keep_all.append((scores[pos], labels[pos], cats[pos], groups[pos], idx))
        keep_all.sort(key=lambda t: t[4])  # dataset order: independent of the sharding
        samples = {
            "score": np.array([t[0] for t in keep_all], dtype=np.float64),
            "label": np.array([t[1] for t in keep_all], dtype=np.int64),
            "category": np.array([t[2] for t in keep_all], dtype=object),
            "group": np.array([t[3] for t in keep_all], dtype=object),
        }
        return samples, skip

    def _compute(self) -> dict[str, Any]:
        samples, skip = self._deduplicate()
        categories = sorted(set(samples["category"].tolist()))
        result: dict[str, Any] = {"mean": {}, "categories": {}, "defect_types": {}, "meta": {}}
        counts: dict[str, dict[str, int]] = {}

        pixel = PixelHistograms(self._spill, self.num_bins, self.chunk_pixels, self.aupro_variant).metrics(skip)
        for cat in categories:
            in_cat = samples["category"] == cat
            scores, labels = samples["score"][in_cat], samples["label"][in_cat]
            groups = samples["group"][in_cat]
            metrics = _image_metrics(scores, labels)
            cat_pixel = pixel.get(cat, {})
            metrics.update(cat_pixel.get(None, dict.fromkeys(PIXEL_METRICS, math.nan)))
            result["categories"][cat] = metrics
            counts[cat] = {"n_images": int(in_cat.sum()), "n_anomalous": int(labels.sum())}
            counts[cat]["n_regions"] = int(cat_pixel.get("n_regions", 0))
            normal = labels == 0
            for defect in sorted(set(groups[~normal].tolist())):
                chosen = normal | (groups == defect)
                drill = _image_metrics(scores[chosen], labels[chosen])
                drill.update(cat_pixel.get(defect, dict.fromkeys(PIXEL_METRICS, math.nan)))
                result["defect_types"][f"{cat}/{defect}"] = drill
            warn_undefined(cat, metrics, counts[cat], cat in pixel, self.aupro_variant)

        from src.aggregate import category_mean  # the suite's one rule; imported here: it imports METRICS

        mean, n_categories = category_mean(result["categories"])
        result["mean"] = {k: math.nan if v is None else v for k, v in mean.items()}  # NaN where undefined
        sizes = sorted({s for sizes in all_gather_object(sorted(self._sizes)) for s in sizes})
        result["meta"] = {
            "aupro_variant": self.aupro_variant,
            "n_categories": n_categories,
            "n_images": int(samples["score"].size),
            "eval_size": list(sizes[0]) if len(sizes) == 1 else [list(s) for s in sizes],
            "num_bins": self.num_bins,
            "counts": counts,
        }
        return result

def _image_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    neg, pos = curves.exact_histogram(scores, labels)
    return {
        "image_auroc": curves.auroc(neg, pos),
        "image_ap": curves.average_precision(neg, pos),
        "image_f1max": curves.f1_max(neg, pos),
    }


def _checked_arrays(anomaly_map: Any, pred_score: Any, mask: Any, label: Any) -> tuple[np.ndarray, ...]:
    """Maps (B, H, W) float32, scores (B,) float64, masks (B, H, W), labels (B,) in {0, 1}."""
    maps = _to_numpy(anomaly_map, np.float32)
    scores = _to_numpy(pred_score, np.float64).reshape(-1)
    masks = _to_numpy(mask)
    labels = _to_numpy(label).reshape(-1)
    B = scores.shape[0]
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if maps.ndim != 3 or maps.shape[0] != B:
        raise ValueError(f"anomaly_map must have shape (B, H, W) with B={B} (pred_score's), got {maps.shape}")
    if masks.shape != maps.shape:
        raise ValueError(
            f"mask must have shape (B, H, W) or (B, 1, H, W) matching anomaly_map {maps.shape}, "
            f"got {_to_numpy(mask).shape}"
        )
    if len(labels) != B:
        raise ValueError(f"label must have {B} entries (one per image), got {len(labels)}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"label must be 0 (normal) or 1 (anomalous), got {np.unique(labels).tolist()}")
    return maps, scores, masks, labels
