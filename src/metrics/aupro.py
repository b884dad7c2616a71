"""Ground-truth regions and threshold grids for the per-region-overlap (PRO) metric.

PRO averages, over every connected ground-truth region of a category, the fraction of the region
above a threshold, so that a small defect weighs as much as a large one. Giving each anomalous
pixel the weight 1 / (area of its region) turns that mean into a weighted pixel count, which is
what lets AUPRO be computed from histograms (:func:`src.metrics.curves.aupro`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: 8-connectivity in 2-D, as skimage.measure.label's default (full connectivity) in the public code.
EIGHT_CONNECTIVITY = np.ones((3, 3), dtype=bool)

#: Number of thresholds of the public AnomalyCLIP / cflow-ad AUPRO.
ANOMALYCLIP_STEPS = 200


def region_weights(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Per anomalous pixel, 1 / (area of its 8-connected region), in ``mask[mask]`` order.

    Args:
        mask: (H, W) bool ground truth.

    Returns:
        ``(weights, n_regions)``; ``weights`` has shape (mask.sum(),), float64.
    """
    labels, n_regions = ndimage.label(mask, structure=EIGHT_CONNECTIVITY)
    if n_regions == 0:
        return np.zeros(0, dtype=np.float64), 0
    inside = labels[mask]
    areas = np.bincount(inside, minlength=n_regions + 1).astype(np.float64)
    return 1.0 / areas[inside], int(n_regions)


def anomalyclip_thresholds(lo: np.float32, hi: np.float32) -> np.ndarray:
    """The public code's grid ``np.arange(min, max, (max - min) / 200)`` over a category's maps.

    Called with the float32 min/max of float32 maps exactly as the public code calls it; numpy returns
    float64 thresholds, and ``map > th`` then compares in float64 (numpy >= 2 promotion), which
    :func:`count_above` reproduces. Empty when ``min == max`` (where the public code fails).
    """
    lo, hi = np.float32(lo), np.float32(hi)
    if not hi > lo:
        return np.zeros(0, dtype=np.float32)
    return np.arange(lo, hi, (hi - lo) / ANOMALYCLIP_STEPS)


def count_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per value, how many thresholds it exceeds strictly (``value > th``). (N,) -> (N,) int64.

    With ascending thresholds, value ``v`` is above threshold ``i`` iff ``i < count_above(v)``.
    """
    return np.searchsorted(thresholds, values.astype(np.float64, copy=False), side="left")
