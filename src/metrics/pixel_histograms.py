"""Pass 2 of the pixel metrics: each category's spilled maps binned into histograms, then the curves.

Every rank bins on the same edges (each category's agreed score range, ``num_bins`` linear bins)
and the same group rows, so one sum over ranks per category gives the histograms of the whole
evaluation, per (category, defect group): all pixels, anomalous pixels, and anomalous pixels
weighted by 1 / (area of their ground-truth region). Every pixel metric is a function of these
(:mod:`src.metrics.curves`); a defect type is scored on the "good" group's rows plus its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from src.metrics import curves
from src.metrics.aupro import anomalyclip_thresholds, count_above, region_weights
from src.metrics.distributed import all_gather_object, all_reduce_sum
from src.metrics.spill import SpillStore

#: Defect group of every normal image (label 0), whatever its ``defect_type`` string says.
NORMAL_GROUP = "good"
#: Pixels converted to float64 at a time while binning: the scratch stays small (8 MiB) whatever
#: the chunk read from the spill files.
BIN_BLOCK = 2**20


class PixelHistograms:
    """The pixel metrics of one evaluation from its spill store.

    Args:
        spill: the maps and masks of pass 1.
        num_bins: linear bins per category.
        chunk_pixels: pixels read from the spill files per step.
        aupro_variant: ``exact`` or ``anomalyclip``.
    """

    def __init__(self, spill: SpillStore, num_bins: int, chunk_pixels: int, aupro_variant: str) -> None:
        self.spill = spill
        self.num_bins = num_bins
        self.chunk_pixels = chunk_pixels
        self.aupro_variant = aupro_variant
        self._scratch = np.empty(0, dtype=np.float64)
        self._idx = np.empty(0, dtype=np.int64)

    def _bin(self, values: np.ndarray, lo: float, scale: float, nb: int, groups: int) -> np.ndarray:
        """Bin of each value, highest scores first: ``nb - 1 - floor((v - lo) * scale)`` in [0, nb).

        (N,) -> (N,) integer bins, a view of a reused buffer (int32 where ``groups * nb`` fits, the
        row offsets of the groups being added later): large temporaries per chunk would be returned
        to the OS and page-faulted in again every time. Computed in float64, ``BIN_BLOCK`` values
        at a time.
        """
        n = values.size
        dtype = np.int32 if groups * nb < 2**31 else np.int64
        if self._idx.size < n or self._idx.dtype != dtype:
            self._idx = np.empty(max(n, self._idx.size), dtype=dtype)
        if self._scratch.size < min(n, BIN_BLOCK):
            self._scratch = np.empty(min(n, BIN_BLOCK), dtype=np.float64)
        out = self._idx[:n]
        for start in range(0, n, BIN_BLOCK):
            block = values[start : start + BIN_BLOCK]
            scaled, idx = self._scratch[: block.size], out[start : start + block.size]
            np.subtract(block, lo, out=scaled, dtype=np.float64)
            scaled *= scale
            np.copyto(idx, scaled, casting="unsafe")  # truncation = floor, as scaled >= 0
            np.clip(idx, 0, nb - 1, out=idx)
            np.subtract(nb - 1, idx, out=idx)
        return out

    def metrics(self, skip: set[int]) -> dict[str, dict[Any, Any]]:
        """Per category: ``{None: category metrics, defect: drill-down metrics, "n_regions": int}``."""
        local = {}
        for cat in self.spill.categories():
            kept = [r for r in self.spill.records(cat) if r.position not in skip]
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
            out[cat] = self._category(cat, lo, hi, sorted(groups), skip)
        return out

    def _category(
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
        scale = nb / (hi - lo) if hi > lo else 0.0  # degenerate range: one bin, everything ties
        for records, values in self.spill.chunks(cat, skip, self.chunk_pixels):
            self._add_chunk(hist, cat, records, values, (lo, scale, thresholds if use_acl else None), row, T)
        hist = all_reduce_sum(hist)
        total, anomalous, weighted = (hist[i * n : (i + 1) * n].reshape(G, nb) for i in range(3))
        regions = hist[3 * n : 3 * n + G]
        acl = hist[3 * n + G :].reshape(3, G, T) if use_acl else None
        return _category_metrics(total, anomalous, weighted, regions, acl, groups)

    def _add_chunk(self, hist: np.ndarray, cat: str, records: list[Any], values: np.ndarray,
                   binning: tuple[float, float, np.ndarray | None], row: dict[str, int], T: int) -> None:
        """Add one chunk of spilled maps to the category's histogram buffer (layout of ``_category``)."""
        lo, scale, thresholds = binning
        nb, G = self.num_bins, len(row)
        n = G * nb
        total, anomalous, weighted, regions = hist[:n], hist[n : 2 * n], hist[2 * n : 3 * n], hist[3 * n : 3 * n + G]
        idx = self._bin(values, lo, scale, nb, G)
        k = count_above(values, thresholds) if thresholds is not None else None
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
            mask = self.spill.read_mask(cat, record)
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
            acl = hist[3 * n + G :].reshape(3, G * T)
            acl[0] += np.bincount(k, minlength=G * T)
            if anom_k:
                a_k = np.concatenate(anom_k)
                acl[1] += np.bincount(a_k, minlength=G * T)
                acl[2] += np.bincount(a_k, weights=a_w, minlength=G * T)


def _category_metrics(total: np.ndarray, anomalous: np.ndarray, weighted: np.ndarray, regions: np.ndarray,
                      acl: np.ndarray | None, groups: list[str]) -> dict[Any, Any]:
    """Category and per-defect-type metrics from the summed (G, nb) histograms (modified in place)."""
    row = {g: i for i, g in enumerate(groups)}
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
    out: dict[Any, Any] = {None: metrics(list(range(len(groups)))), "n_regions": int(round(regions.sum()))}
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


