"""Where a DAS edit may go and how it is labelled: foreground, random regions, the visibility rule.

The shared part of VTFusion's anomaly synthesis (the generators are in ``das_types.py``, the
drawing of types in ``das.py``). Every number is our resolution of a paper that gives none (listed
in the README). Images are float32 (S, S, 3) RGB in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Pixels whose mean absolute RGB change exceeds this count as changed (NSA's visibility rule).
CHANGE_THRESHOLD = 0.02


@dataclass
class Edit:
    """One synthetic anomaly: ``image`` (S, S, 3) float32, ``mask`` (S, S) float32 {0, 1},
    ``region`` (S, S) bool where the edit may change pixels (before feathering)."""

    image: np.ndarray
    mask: np.ndarray
    region: np.ndarray



def foreground_mask(image: np.ndarray, enabled: bool = True) -> np.ndarray:
    """(S, S) bool foreground of an object image; all True for textures and cluttered scenes.

    Background colour = median of a 5 %-wide border; foreground = mean absolute colour difference
    above 0.08, cleaned by a 7 x 7 median. Coverage outside [5 %, 95 %] means the heuristic found
    no object on a plain background, so the whole image is allowed.
    """
    h, w = image.shape[:2]
    everything = np.ones((h, w), dtype=bool)
    if not enabled:
        return everything
    b = max(1, round(0.05 * min(h, w)))
    border = np.concatenate(
        [image[:b].reshape(-1, 3), image[-b:].reshape(-1, 3), image[:, :b].reshape(-1, 3), image[:, -b:].reshape(-1, 3)]
    )
    background = np.median(border, axis=0)
    fg = (np.abs(image - background).mean(axis=2) > 0.08).astype(np.uint8) * 255
    fg = cv2.medianBlur(fg, 7) > 0
    coverage = fg.mean()
    if coverage < 0.05 or coverage > 0.95:
        return everything
    return fg


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.abs(after - before).mean(axis=2) > CHANGE_THRESHOLD


def visible_mask(before: np.ndarray, after: np.ndarray, region: np.ndarray) -> np.ndarray:
    """NSA's rule: region AND visibly changed, 5 x 5 median. (S, S) float32."""
    mask = (region & changed(before, after)).astype(np.uint8) * 255
    return (cv2.medianBlur(mask, 5) > 0).astype(np.float32)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def accept(region: np.ndarray, fg: np.ndarray, attempt: int, retries: int = 10) -> bool:
    """A region is accepted when half of it lies on the foreground; after ``retries`` anywhere."""
    if not region.any():
        return False
    return attempt >= retries - 1 or fg[region].mean() >= 0.5


def random_point(fg: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    ys, xs = np.nonzero(fg)
    i = int(rng.integers(len(ys)))
    return int(ys[i]), int(xs[i])


def perlin_noise(shape: tuple[int, int], res: int, rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise with ``res`` periods per side, cropped to ``shape``. (H, W) in ~[-1, 1]."""
    h, w = shape
    cell = int(np.ceil(max(h, w) / res))
    size = cell * res
    angles = rng.uniform(0, 2 * np.pi, (res + 1, res + 1))
    grads = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    t = (np.arange(size) % cell) / cell
    ty, tx = np.meshgrid(t, t, indexing="ij")
    cy, cx = np.meshgrid(np.arange(size) // cell, np.arange(size) // cell, indexing="ij")

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grads[cy + dy, cx + dx]
        return g[..., 0] * (tx - dx) + g[..., 1] * (ty - dy)

    def fade(v: np.ndarray) -> np.ndarray:
        return 6 * v**5 - 15 * v**4 + 10 * v**3

    u, v = fade(tx), fade(ty)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return (np.sqrt(2) * (top * (1 - v) + bottom * v))[:h, :w]


def random_region(
    shape: tuple[int, int], area: tuple[float, float], fg: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """An ellipse (random axes and angle) or a thresholded Perlin blob (DRAEM), 50/50. (S, S) bool."""
    h, w = shape
    region = np.zeros(shape, dtype=bool)
    for attempt in range(10):
        target = rng.uniform(*area) * h * w
        if rng.random() < 0.5:
            ratio = rng.uniform(0.3, 1.0)
            a = np.sqrt(target / (np.pi * ratio))
            axes = (max(1, round(a)), max(1, round(a * ratio)))
            cy, cx = random_point(fg, rng)
            canvas = np.zeros(shape, dtype=np.uint8)
            cv2.ellipse(canvas, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
            region = canvas > 0
        else:
            noise = perlin_noise(shape, int(2 ** rng.integers(1, 4)), rng)
            # Threshold at the quantile that gives the target area; restricted to the foreground so
            # that blobs land on the object.
            values = np.where(fg, noise, -np.inf)
            k = max(1, int(target))
            threshold = np.partition(values.ravel(), -k)[-k]
            region = (values >= threshold) & fg
        if accept(region, fg, attempt):
            return region
    return region
