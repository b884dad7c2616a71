"""Streaming, distributed-aware accumulator of every image- and pixel-level metric.

Image level: scores are few, so they are kept exactly and the metrics are exact.

Pixel level, two passes so that memory does not grow with the number of pixels:

1. :meth:`AnomalyMetrics.update` appends each map and bit-packed mask to a per-rank spill file
   (:mod:`src.metrics.spill`).
2. :meth:`AnomalyMetrics.compute` agrees with the other ranks on which samples count (the
   distributed sampler pads shards with repeated samples; the first occurrence of an ``index``
   wins) and on each category's score range ``[min, max]``, then streams its spill files once and
   bins every pixel into ``num_bins`` linear bins on that range, per (category, defect group):
   all pixels, anomalous pixels, and anomalous pixels weighted by 1 / (area of their ground-truth
   region). One sum over ranks per category, then every pixel metric is a function of these
   histograms (:mod:`src.metrics.curves`). A defect type is scored on the category's normal images
   plus its own, i.e. on the "good" group's histogram plus its own.

Scores are binned on their own range, never squashed (no sigmoid, no clamping), so unbounded
regression outputs and distances work as well as probabilities.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from src.metrics import curves
from src.metrics.aupro import anomalyclip_thresholds, count_above, region_weights
from src.metrics.distributed import all_gather_object, all_reduce_sum, rank_and_world
from src.metrics.spill import SpillStore

IMAGE_METRICS = ("image_auroc", "image_ap", "image_f1max")
PIXEL_METRICS = ("pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro")
METRICS = IMAGE_METRICS + PIXEL_METRICS
AUPRO_VARIANTS = ("exact", "anomalyclip")

#: Defect group of every normal image (label 0), whatever its ``defect_type`` string says.
NORMAL_GROUP = "good"
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
        self._work: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0, dtype=np.int64))

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
        category, defect_type = list(category), list(defect_type)
        for name, seq in (("label", labels), ("category", category), ("defect_type", defect_type)):
            if len(seq) != B:
                raise ValueError(f"{name} must have {B} entries (one per image), got {len(seq)}")
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"label must be 0 (normal) or 1 (anomalous), got {np.unique(labels).tolist()}")
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

        pixel = self._pixel_metrics(skip)
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
            _warn_undefined(cat, metrics, counts[cat], cat in pixel, self.aupro_variant)

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

    def _bin(self, values: np.ndarray, lo: float, scale: float, nb: int) -> np.ndarray:
        """Bin of each value, highest scores first: ``nb - 1 - floor((v - lo) * scale)`` in [0, nb).

        (N,) -> (N,) int64, a view of a reused buffer: large temporaries per chunk would be returned
        to the OS and page-faulted in again every time. Computed in float64.
        """
        n = values.size
        if self._work[0].size < n:
            self._work = (np.empty(n, dtype=np.float64), np.empty(n, dtype=np.int64))
        scaled, idx = self._work[0][:n], self._work[1][:n]
        np.subtract(values, lo, out=scaled, dtype=np.float64)
        scaled *= scale
        np.copyto(idx, scaled, casting="unsafe")  # truncation = floor, as scaled >= 0
        np.clip(idx, 0, nb - 1, out=idx)
        np.subtract(nb - 1, idx, out=idx)
        return idx

    def _pixel_metrics(self, skip: set[int]) -> dict[str, dict[Any, Any]]:
        """Per category: ``{None: category metrics, defect: drill-down metrics, "n_regions": int}``."""
        local = {}
        for cat in self._spill.categories():
            kept = [r for r in self._spill.records(cat) if r.position not in skip]
            if kept:
                local[cat] = (
                    min(r.vmin for r in kept),
                    max(r.vmax for r in kept),
                    sorted({r.group for r in kept}),
                )
        # Every rank bins on the same edges and the same group rows: agree on them first.
        agreed: dict[str, tuple[float, float, set[str]]] = {}
        for rank_local in all_gather_object(local):
            for cat, (lo, hi, groups) in rank_local.items():
                if cat in agreed:
                    a_lo, a_hi, a_groups = agreed[cat]
                    agreed[cat] = (min(a_lo, lo), max(a_hi, hi), a_groups | set(groups))
                else:
                    agreed[cat] = (lo, hi, set(groups))
        out = {}
        for cat in sorted(agreed):
            lo, hi, groups = agreed[cat]
            out[cat] = self._category_pixel_metrics(cat, lo, hi, sorted(groups), skip)
        return out

    def _category_pixel_metrics(
        self, cat: str, lo: float, hi: float, groups: list[str], skip: set[int]
    ) -> dict[Any, Any]:
        nb = self.num_bins
        G = len(groups)
        row = {g: i for i, g in enumerate(groups)}
        thresholds = anomalyclip_thresholds(np.float32(lo), np.float32(hi))
        use_acl = self.aupro_variant == "anomalyclip"
        T = thresholds.size + 1  # count_above() values 0..len(thresholds)

        # One float64 buffer holds every sum (exact for counts below 2**53), so that a single
        # all_reduce per category sums it over ranks: all pixels, anomalous pixels, anomalous
        # pixels weighted by 1 / region area, (G, nb) each; regions per group (G,); and for the
        # anomalyclip variant the same three per grid threshold, (3, G, T).
        n = G * nb
        hist = np.zeros(3 * n + G + (3 * G * T if use_acl else 0), dtype=np.float64)
        total, anomalous, weighted, regions = hist[:n], hist[n : 2 * n], hist[2 * n : 3 * n], hist[3 * n : 3 * n + G]
        acl = hist[3 * n + G :].reshape(3, G * T) if use_acl else None
        scale = nb / (hi - lo) if hi > lo else 0.0  # degenerate range: one bin, everything ties

        for records, values in self._spill.chunks(cat, skip, self.chunk_pixels):
            idx = self._bin(values, lo, scale, nb)
            k = count_above(values, thresholds) if use_acl else None
            anom_idx, anom_w, anom_k = [], [], []
            offset = 0
            for record in records:
                sl = slice(offset, offset + record.pixels)
                offset += record.pixels
                g = row[record.group]
                if g:
                    idx[sl] += g * nb
                    if k is not None:
                        k[sl] += g * T
                if record.mask_offset < 0:
                    continue
                mask = self._spill.read_mask(cat, record)
                weights, n_regions = region_weights(mask)
                regions[g] += n_regions
                flat = mask.ravel()
                anom_idx.append(idx[sl][flat])
                anom_w.append(weights)
                if k is not None:
                    anom_k.append(k[sl][flat])
            # ufunc.at adds in place: no (G * nb)-sized temporary per chunk, unlike bincount.
            np.add.at(total, idx, 1.0)
            if anom_idx:
                a_idx, a_w = np.concatenate(anom_idx), np.concatenate(anom_w)
                np.add.at(anomalous, a_idx, 1.0)
                np.add.at(weighted, a_idx, a_w)
            if k is not None:
                acl[0] += np.bincount(k, minlength=G * T)
                if anom_k:
                    a_k = np.concatenate(anom_k)
                    acl[1] += np.bincount(a_k, minlength=G * T)
                    acl[2] += np.bincount(a_k, weights=a_w, minlength=G * T)

        hist = all_reduce_sum(hist)
        total, anomalous, weighted = (hist[i * n : (i + 1) * n].reshape(G, nb) for i in range(3))
        regions = hist[3 * n : 3 * n + G]
        if acl is not None:
            acl = hist[3 * n + G :].reshape(3, G, T)
        # Bins are stored highest score first, so in-place cumulative sums give, per group, the
        # false positives, true positives and PRO sums at every threshold. Cumulative sums are
        # linear: a defect type's curve (normal group + its group) is the sum of two rows, so the
        # 1 + (number of defect types) evaluations cost one addition each, not a new cumsum.
        for a in (total, anomalous, weighted):
            np.cumsum(a, axis=1, out=a)
        total -= anomalous  # now cumulative normal pixels: false positives
        false_pos, true_pos, pro_sums = total, anomalous, weighted

        def metrics(rows: list[int]) -> dict[str, float]:
            fp, tp, pro_sum = (_sum_rows(a, rows) for a in (false_pos, true_pos, pro_sums))
            n_regions = int(round(regions[rows].sum()))
            curve = curves.BinaryCurve(fp, tp)
            if acl is None:
                aupro = curves.aupro_from_cumsums(fp, pro_sum, n_regions)
            else:
                # count_above k: above thresholds 0..k-1; "above threshold i" = sum over k > i.
                tot_k, pos_k, w_k = (acl[j][rows].sum(0) for j in range(3))
                above = [np.cumsum(a[::-1])[::-1][1:] for a in (tot_k - pos_k, w_k)]
                aupro = curves.aupro_anomalyclip(above[0], curve.n_neg, above[1], n_regions)
            return {
                "pixel_auroc": curve.auroc(),
                "pixel_ap": curve.average_precision(),
                "pixel_f1max": curve.f1_max(),
                "pixel_aupro": aupro,
            }

        normal_rows = [row[NORMAL_GROUP]] if NORMAL_GROUP in row else []
        out: dict[Any, Any] = {None: metrics(list(range(G))), "n_regions": int(round(regions.sum()))}
        for g in groups:
            if g != NORMAL_GROUP:
                out[g] = metrics(normal_rows + [row[g]])
        return out


def _sum_rows(array: np.ndarray, rows: list[int]) -> np.ndarray:
    """Sum of some rows of a (G, B) array without copying them first."""
    if len(rows) == array.shape[0]:
        return array.sum(axis=0)
    out = array[rows[0]].copy()
    for r in rows[1:]:
        out += array[r]
    return out


def _image_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    neg, pos = curves.exact_histogram(scores, labels)
    return {
        "image_auroc": curves.auroc(neg, pos),
        "image_ap": curves.average_precision(neg, pos),
        "image_f1max": curves.f1_max(neg, pos),
    }


def _warn_undefined(
    cat: str, metrics: dict[str, float], counts: dict[str, int], has_pixels: bool, variant: str
) -> None:
    undefined = [k for k in METRICS if math.isnan(metrics[k])]
    if not undefined:
        return
    n, n_anom = counts["n_images"], counts["n_anomalous"]
    reasons = []
    if n_anom in (0, n):
        reasons.append(f"{n_anom} of {n} images are anomalous")
    if not has_pixels:
        reasons.append("no image has a pixel mask")
    elif counts["n_regions"] == 0:
        reasons.append("no anomalous pixel in the masks")
    if not reasons and undefined == ["pixel_aupro"] and variant == "anomalyclip":
        reasons.append("fewer than two of the 200 grid thresholds give FPR < 0.3, the public code divides 0 by 0")
    reason = "; ".join(reasons) or "a class is missing or the score range is degenerate"
    warnings.warn(
        f"category {cat!r}: {', '.join(undefined)} undefined ({reason}); reported as null and left out of "
        "the mean (see meta.n_categories)",
        stacklevel=3,
    )
