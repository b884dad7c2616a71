"""The four DAS anomaly generators: misplaced (cut-and-paste), blur, crack, noise.

Each takes ``(image, rng, fg, pool)`` (float32 (S, S, 3) RGB in [0, 1], the sample's generator,
the foreground of ``das_regions.foreground_mask``, the other shots) and returns an :class:`Edit`.
Labelling rules (why they differ per type):

* misplaced and blur: mask = region AND (mean absolute change > 0.02), then a 5 x 5 median, as
  NSA labels its swaps: an edit nobody can see must not be called anomalous;
* crack: the anti-aliased stroke > 0.5 without a median (a 5 x 5 median deletes thin lines);
* noise: the whole region (a median would empty sparse salt-and-pepper changes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from .das_regions import Edit, accept, dilate, random_point, random_region, visible_mask


def misplaced(
    image: np.ndarray, rng: np.random.Generator, fg: np.ndarray, pool: Sequence[np.ndarray] = ()
) -> Edit:
    """Cut-and-paste (NSA "swap"): 1–3 rectangles from this image or another shot, moved elsewhere."""
    h, w = image.shape[:2]
    out = image.copy()
    region = np.zeros((h, w), dtype=bool)
    n_patches = 1
    while n_patches < 3 and rng.random() < 0.5:  # each further patch with p = 0.5: 1, 2, 3 w.p. 1/2, 1/4, 1/4
        n_patches += 1
    for _ in range(n_patches):
        same = not pool or rng.random() < 0.5
        source = image if same else pool[int(rng.integers(len(pool)))]
        area = rng.uniform(0.02, 0.15) * h * w
        aspect = rng.uniform(0.3, 1.0) if rng.random() < 0.5 else rng.uniform(1.0, 3.3)
        ph = int(np.clip(round(np.sqrt(area * aspect)), 2, h - 1))
        pw = int(np.clip(round(np.sqrt(area / aspect)), 2, w - 1))
        if rng.random() < 0.5:  # rotate the source about the patch centre, then cut the rectangle
            sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
            matrix = cv2.getRotationMatrix2D((sx + pw / 2, sy + ph / 2), float(rng.uniform(-45, 45)), 1.0)
            source = cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        else:
            sy, sx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
        patch = source[sy:sy + ph, sx:sx + pw]
        for attempt in range(10):
            dy, dx = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
            # The destination must move by at least half the patch, else the swap is invisible.
            far = not same or abs(dy - sy) >= ph / 2 or abs(dx - sx) >= pw / 2
            box = np.zeros((h, w), dtype=bool)
            box[dy:dy + ph, dx:dx + pw] = True
            if far and accept(box, fg, attempt):
                break
        out[dy:dy + ph, dx:dx + pw] = patch
        region |= box
    return Edit(out, visible_mask(image, out, region), region)


def blur(image: np.ndarray, rng: np.random.Generator, fg: np.ndarray, pool: Sequence[np.ndarray] = ()) -> Edit:
    """Gaussian blur (sigma 2–6) of a region, composited through a feathered (sigma 1.5) mask."""
    region = random_region(image.shape[:2], (0.01, 0.15), fg, rng)
    sigma = float(rng.uniform(2.0, 6.0))
    ksize = 2 * int(np.ceil(3 * sigma)) + 1
    blurred = cv2.GaussianBlur(image, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.5, borderType=cv2.BORDER_REFLECT)
    # The feather's tail is cut 3 px outside the region, the border allowance of the label rule.
    alpha = (alpha * dilate(region, 3))[..., None]
    out = (image * (1 - alpha) + blurred * alpha).astype(np.float32)
    return Edit(out, visible_mask(image, out, region), region)


def _crack_strokes(
    shape: tuple[int, int], rng: np.random.Generator, fg: np.ndarray, scale: int = 4
) -> np.ndarray:
    """Anti-aliased coverage (S, S) in [0, 1] of 1–3 branching, tapering random walks."""
    h, w = shape
    canvas = np.zeros((h * scale, w * scale), dtype=np.uint8)

    def walk(y: float, x: float, heading: float, length: float, width: float, depth: int) -> None:
        steps = max(2, int(length / 2))  # 2 px per step
        points = [(x, y)]
        for _ in range(steps):
            heading += np.deg2rad(rng.normal(0.0, 15.0))
            x, y = x + 2 * np.cos(heading), y + 2 * np.sin(heading)
            points.append((x, y))
            if depth == 0 and rng.random() < 0.03:
                rest = (steps - len(points)) * 2
                if rest > 4:
                    side = heading + np.deg2rad(rng.choice([-1, 1]) * rng.uniform(20, 70))
                    walk(y, x, side, rest * rng.uniform(0.3, 0.6), max(1.0, width * 0.7), depth + 1)
        n = len(points) - 1
        for i in range(n):
            t = (i + 0.5) / n
            thickness = 1 + (width - 1) * np.sin(np.pi * t)  # tapers to 1 px at both ends
            p0 = (int(points[i][0] * scale), int(points[i][1] * scale))
            p1 = (int(points[i + 1][0] * scale), int(points[i + 1][1] * scale))
            cv2.line(canvas, p0, p1, 255, thickness=max(1, int(round(thickness * scale))), lineType=cv2.LINE_AA)

    for _ in range(int(rng.integers(1, 4))):
        y, x = random_point(fg, rng)
        walk(y + 0.5, x + 0.5, rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.5) * min(h, w), rng.uniform(1, 4), 0)
    # Area down-sampling of the supersampled strokes is the anti-aliasing.
    return cv2.resize(canvas.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)


def crack(image: np.ndarray, rng: np.random.Generator, fg: np.ndarray, pool: Sequence[np.ndarray] = ()) -> Edit:
    """Dark cracks whose fill is the image's own luminance darkened, so the surface texture shows through."""
    coverage = _crack_strokes(image.shape[:2], rng, fg)
    luminance = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    fill = (luminance * rng.uniform(0.3, 0.7))[..., None]
    alpha = coverage[..., None]
    out = (image * (1 - alpha) + fill * alpha).astype(np.float32)
    return Edit(out, (coverage > 0.5).astype(np.float32), coverage > 0)


def noise(image: np.ndarray, rng: np.random.Generator, fg: np.ndarray, pool: Sequence[np.ndarray] = ()) -> Edit:
    """Uniform, Gaussian or salt-and-pepper noise inside a region; the whole region is the label."""
    region = random_region(image.shape[:2], (0.005, 0.10), fg, rng)
    out = image.copy()
    n = int(region.sum())
    family = int(rng.integers(3))
    if family == 0:
        a = rng.uniform(0.1, 0.4)
        out[region] += rng.uniform(-a, a, (n, 3)).astype(np.float32)
    elif family == 1:
        out[region] += rng.normal(0.0, rng.uniform(0.1, 0.4), (n, 3)).astype(np.float32)
    else:
        values = out[region]
        hit = rng.random(n) < rng.uniform(0.05, 0.2)
        values[hit] = rng.integers(0, 2, (int(hit.sum()), 1)).astype(np.float32)
        out[region] = values
    return Edit(np.clip(out, 0.0, 1.0).astype(np.float32), region.astype(np.float32), region)


SYNTHESISERS: dict[str, Callable[..., Edit]] = {"misplaced": misplaced, "blur": blur, "crack": crack, "noise": noise}
