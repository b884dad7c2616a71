"""Randomised categories built to break binned metrics (ties, outliers, tiny ranges, tiny regions)."""

import numpy as np

KINDS = ("ties", "outliers", "bimodal_negative", "near_constant", "single_pixel", "many_small")


def _masks(rng, kind, labels, size):
    masks = np.zeros((labels.size, size, size), dtype=bool)
    for i in np.flatnonzero(labels):
        if kind == "single_pixel":
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, size, 2)
                masks[i, y, x] = True
            if i % 2:  # two diagonal pixels: one region under 8-connectivity, two under 4
                masks[i, 1, 1] = masks[i, 2, 2] = True
        elif kind == "many_small":
            for _ in range(rng.integers(5, 12)):
                y, x = rng.integers(0, size - 2, 2)
                h, w = rng.integers(1, 3, 2)
                masks[i, y : y + h, x : x + w] = True
        else:
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, size - 6, 2)
                h, w = rng.integers(1, 7, 2)
                masks[i, y : y + h, x : x + w] = True
    return masks


def make_category(kind, seed=0, n_images=12, size=20):
    """Returns maps (N, S, S) float32, masks (N, S, S) bool, scores (N,), labels (N,), defect types (N,)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(n_images, dtype=np.int64)
    labels[rng.permutation(n_images)[: n_images * 2 // 3]] = 1
    masks = _masks(rng, kind, labels, size)
    shape = masks.shape
    if kind == "ties":
        maps = np.round(rng.normal(size=shape) + 0.8 * masks, 1)
    elif kind == "outliers":
        maps = rng.normal(size=shape) + 1.0 * masks
        flat = maps.reshape(-1)
        flat[rng.integers(0, flat.size, 5)] = 100 * (flat.max() - flat.min())
        flat[rng.integers(0, flat.size, 2)] = -30.0
    elif kind == "bimodal_negative":
        mode = rng.random(shape) < 0.5
        maps = np.where(mode, rng.normal(-50, 1, shape), rng.normal(-10, 2, shape)) + 3 * masks
    elif kind == "near_constant":
        maps = 0.5 + rng.uniform(-1e-4, 1e-4, shape) + 2e-5 * masks
    else:
        maps = rng.normal(size=shape) + 1.5 * masks
    maps = maps.astype(np.float32)
    scores = maps.reshape(n_images, -1).max(1).astype(np.float64)
    if kind == "ties":
        scores = np.round(scores)
    defects = np.array(["good" if y == 0 else ("crack", "hole")[i % 2] for i, y in enumerate(labels)])
    return maps, masks, scores, labels, defects
