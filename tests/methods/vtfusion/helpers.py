"""Small fixtures shared by the VTFusion tests: a textured image, a tiny model, an exact AUROC."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from scipy.stats import rankdata

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def textured_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """(S, S, 3) float32 in [0, 1]: smooth random texture (every edit on it is visible)."""
    rng = np.random.default_rng(seed)
    image = np.clip(0.5 + 0.25 * rng.standard_normal((size, size, 3)), 0, 1).astype(np.float32)
    return cv2.GaussianBlur(image, (0, 0), 1.0)


def object_image(size: int = 96, seed: int = 0) -> np.ndarray:
    """(S, S, 3) float32: a textured disc on a dark plain background (an "object" category)."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 0.1, dtype=np.float32)
    cv2.circle(image, (size // 2, size // 2), size // 3, (0.8, 0.6, 0.4), -1)
    inside = np.zeros((size, size), np.uint8)
    cv2.circle(inside, (size // 2, size // 2), size // 3, 1, -1)
    image += (0.08 * rng.standard_normal(image.shape)).astype(np.float32) * inside[..., None]
    return np.clip(image, 0, 1).astype(np.float32)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) [0, 1] -> (3, S, S) CLIP-normalised."""
    return torch.from_numpy(((image - MEAN) / STD).transpose(2, 0, 1).copy())


def tiny_kwargs(**overrides) -> dict:
    kwargs = dict(
        backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 3, 4], seg_width=16, fusion_dim=8,
        prompt_set="pair",  # the 420-sentence ensemble is tested in test_ate; two sentences keep tests fast
    )
    kwargs.update(overrides)
    return kwargs


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Exact rank-based AUROC (Mann-Whitney U with midranks for ties)."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both classes")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
