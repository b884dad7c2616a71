"""Threshold-free metrics (AUROC, AP, max-F1, AUPRO) as functions of score histograms.

Every function takes per-bin counts in *ascending* score order: ``neg[b]`` normal samples and
``pos[b]`` anomalous samples whose score falls in bin ``b``. A bin is treated as one tied score,
which is how sklearn treats equal scores, so the same code is

* exact when each bin holds one distinct score (:func:`exact_histogram`, used for image scores), and
* a binned approximation when bins are fixed intervals on ``[min, max]`` (used for pixels), whose
  error is bounded by the mass that shares a bin with scores of the other class.

Undefined metrics (a class absent) return ``nan``; callers decide how to report them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Integration limit of the field's AUPRO (MVTec AD): false-positive rate 30 %.
MAX_FPR = 0.3


def exact_histogram(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal and anomalous counts per distinct score, ascending. (N,), (N,) -> (U,), (U,)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    _, inverse = np.unique(scores, return_inverse=True)
    n_unique = int(inverse.max()) + 1 if inverse.size else 0
    pos = np.bincount(inverse[labels], minlength=n_unique)
    neg = np.bincount(inverse[~labels], minlength=n_unique)
    return neg, pos


@dataclass(frozen=True)
class BinaryCurve:
    """Cumulative counts when thresholding at each bin from the highest score down.

    ``fp[k]`` / ``tp[k]``: normal / anomalous samples in the ``k + 1`` highest bins. Built once per
    histogram, so that AUROC, AP and max-F1 share the two cumulative sums.
    """

    fp: np.ndarray
    tp: np.ndarray

    @classmethod
    def from_histogram(cls, neg: np.ndarray, pos: np.ndarray) -> BinaryCurve:
        """The curve of per-bin negative and positive counts (bins in ascending score order)."""
        fp = np.cumsum(np.asarray(neg, dtype=np.float64)[::-1])
        tp = np.cumsum(np.asarray(pos, dtype=np.float64)[::-1])
        return cls(fp, tp)

    @property
    def n_neg(self) -> float:
        """Number of negatives."""
        return float(self.fp[-1]) if self.fp.size else 0.0

    @property
    def n_pos(self) -> float:
        """Number of positives."""
        return float(self.tp[-1]) if self.tp.size else 0.0

    def auroc(self) -> float:
        """Trapezoidal ROC area (equal to Mann-Whitney with ties counting one half)."""
        if self.n_neg == 0 or self.n_pos == 0:
            return float("nan")
        fp, tp = np.concatenate([[0.0], self.fp]), np.concatenate([[0.0], self.tp])
        return float(np.dot(np.diff(fp), tp[1:] + tp[:-1]) / (2 * self.n_neg * self.n_pos))

    def average_precision(self) -> float:
        """sklearn's AP: sum over thresholds of (recall step) x precision; ``nan`` without positives."""
        if self.n_pos == 0:
            return float("nan")
        step = np.diff(self.tp, prepend=0.0)
        hit = step > 0
        return float(np.sum(step[hit] * self.tp[hit] / (self.tp[hit] + self.fp[hit])) / self.n_pos)

    def f1_max(self) -> float:
        """Best F1 = 2 TP / (2 TP + FP + FN) over thresholds; ``nan`` without positives."""
        if self.n_pos == 0:
            return float("nan")
        return float(np.max(2 * self.tp / (self.tp + self.fp + self.n_pos)))


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    """Area under the ROC curve (a tie counts one half). ``nan`` if a class is absent."""
    return BinaryCurve.from_histogram(neg, pos).auroc()


def average_precision(neg: np.ndarray, pos: np.ndarray) -> float:
    """Average precision as sklearn defines it. ``nan`` without anomalous samples (sklearn: 0 + warning)."""
    return BinaryCurve.from_histogram(neg, pos).average_precision()


def f1_max(neg: np.ndarray, pos: np.ndarray) -> float:
    """Best F1 over all thresholds. ``nan`` without anomalous samples."""
    return BinaryCurve.from_histogram(neg, pos).f1_max()


def aupro(neg: np.ndarray, pos_weight: np.ndarray, n_regions: int, max_fpr: float = MAX_FPR) -> float:
    """Normalised area under the per-region-overlap curve up to ``max_fpr`` (the MVTec AD definition).

    Args:
        neg: normal-pixel counts per bin, ascending scores.
        pos_weight: per bin, the sum over anomalous pixels of 1 / (area of the pixel's ground-truth
            region), so that its descending cumsum divided by ``n_regions`` is the mean overlap over
            regions (PRO) at each threshold.
        n_regions: number of connected ground-truth regions (8-connectivity).
        max_fpr: integration limit; the curve is interpolated linearly at it.

    Returns:
        Area divided by ``max_fpr`` (1.0 for a perfect detector); ``nan`` without regions or normal pixels.
    """
    fp = np.cumsum(np.asarray(neg, dtype=np.float64)[::-1])
    return aupro_from_cumsums(fp, np.cumsum(np.asarray(pos_weight, dtype=np.float64)[::-1]), n_regions, max_fpr)


def aupro_from_cumsums(fp: np.ndarray, pro_sum: np.ndarray, n_regions: int, max_fpr: float = MAX_FPR) -> float:
    """:func:`aupro` from descending cumulative sums (``BinaryCurve.fp`` and the weights' cumsum)."""
    n_neg = fp[-1] if fp.size else 0.0
    if n_regions == 0 or n_neg == 0:
        return float("nan")
    # Only the start of the curve matters: keep the points up to the first one past max_fpr.
    end = int(np.searchsorted(fp, max_fpr * n_neg, side="left")) + 2
    fp, pro_sum = fp[:end], pro_sum[:end]
    # The curve starts at (0, 0) (threshold above every score) and is linear across a bin, like a tie.
    fpr = np.concatenate([[0.0], fp / n_neg])
    pro = np.concatenate([[0.0], pro_sum / n_regions])
    j = int(np.searchsorted(fpr, max_fpr, side="left"))  # first point at or beyond the limit
    j = min(j, fpr.size - 1)
    area = float(np.sum((fpr[1:j] - fpr[: j - 1]) * (pro[1:j] + pro[: j - 1]) / 2)) if j > 1 else 0.0
    x0, x1, y0, y1 = fpr[j - 1], fpr[j], pro[j - 1], pro[j]
    y_cut = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0) if x1 > x0 else y1
    area += (max_fpr - x0) * (y0 + y_cut) / 2
    return area / max_fpr


def aupro_anomalyclip(fp: np.ndarray, n_neg: float, pro_sum: np.ndarray, n_regions: int) -> float:
    """AUPRO as AnomalyCLIP / FB-CLIP / cflow-ad compute it, from counts at their threshold grid.

    Args:
        fp: per threshold (ascending), normal pixels with score > threshold.
        n_neg: number of normal pixels.
        pro_sum: per threshold, the sum over regions of the region's fraction with score > threshold.
        n_regions: number of ground-truth regions.

    Steps 4-5 of the public code: keep thresholds with FPR < 0.3, min-max rescale *those* FPRs to
    [0, 1], trapezoid area of PRO over them. ``nan`` where the public code would crash or divide by
    zero (no regions, no normal pixels, fewer than two distinct kept FPRs).
    """
    if n_regions == 0 or n_neg == 0 or len(fp) == 0:
        return float("nan")
    fpr = np.asarray(fp, dtype=np.float64) / n_neg
    pro = np.asarray(pro_sum, dtype=np.float64) / n_regions
    keep = fpr < MAX_FPR
    if not keep.any():
        return float("nan")
    fpr, pro = fpr[keep], pro[keep]
    span = fpr.max() - fpr.min()
    if span == 0:
        return float("nan")
    fpr = (fpr - fpr.min()) / span
    # FPR falls as the threshold rises; sklearn.metrics.auc then returns the positive area.
    return float(-np.sum((fpr[1:] - fpr[:-1]) * (pro[1:] + pro[:-1]) / 2))
