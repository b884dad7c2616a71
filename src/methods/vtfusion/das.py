"""DAS: VTFusion's dual-granularity anomaly synthesis (four types plus their combination).

The paper names the types (misplaced cut-and-paste, blurry, crack, noise) and shows combined
cases, but gives no parameters; every number here is our resolution (listed in the README).
All edits work on a float32 (S, S, 3) RGB image in [0, 1] (the resized image, before CLIP
normalisation) and return the edited image, its exact {0, 1} mask, and the *region* the edit was
allowed to touch (used by the tests' border allowance, never by training).

Labelling rules (why they differ per type):

* misplaced and blur: mask = region AND (mean absolute change > 0.02), then a 5 x 5 median, as
  NSA labels its swaps: an edit nobody can see must not be called anomalous;
* crack: the anti-aliased stroke > 0.5 without a median (a 5 x 5 median deletes thin lines);
* noise: the whole region (a median would empty sparse salt-and-pepper changes).

:class:`DASHook` plugs this into the DataModule's generic per-sample hook; ``datamodules/`` never
imports it, the config names it by dotted path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from datamodules.base import SampleHook

DAS_TYPES = ("misplaced", "blur", "crack", "noise")

#: Pixels whose mean absolute RGB change exceeds this count as changed (NSA's visibility rule).
CHANGE_THRESHOLD = 0.02


@dataclass
class Edit:
    """One synthetic anomaly: ``image`` (S, S, 3) float32, ``mask`` (S, S) float32 {0, 1},
    ``region`` (S, S) bool where the edit may change pixels (before feathering)."""

    image: np.ndarray
    mask: np.ndarray
    region: np.ndarray


# ---------------------------------------------------------------------------------------------
# Shared helpers


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


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.abs(after - before).mean(axis=2) > CHANGE_THRESHOLD


def _visible_mask(before: np.ndarray, after: np.ndarray, region: np.ndarray) -> np.ndarray:
    """NSA's rule: region AND visibly changed, 5 x 5 median. (S, S) float32."""
    mask = (region & _changed(before, after)).astype(np.uint8) * 255
    return (cv2.medianBlur(mask, 5) > 0).astype(np.float32)


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def _accept(region: np.ndarray, fg: np.ndarray, attempt: int, retries: int = 10) -> bool:
    """A region is accepted when half of it lies on the foreground; after ``retries`` anywhere."""
    if not region.any():
        return False
    return attempt >= retries - 1 or fg[region].mean() >= 0.5


def _random_point(fg: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
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
            cy, cx = _random_point(fg, rng)
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
        if _accept(region, fg, attempt):
            return region
    return region


# ---------------------------------------------------------------------------------------------
# The four types


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
            if far and _accept(box, fg, attempt):
                break
        out[dy:dy + ph, dx:dx + pw] = patch
        region |= box
    return Edit(out, _visible_mask(image, out, region), region)


def blur(image: np.ndarray, rng: np.random.Generator, fg: np.ndarray, pool: Sequence[np.ndarray] = ()) -> Edit:
    """Gaussian blur (sigma 2–6) of a region, composited through a feathered (sigma 1.5) mask."""
    region = random_region(image.shape[:2], (0.01, 0.15), fg, rng)
    sigma = float(rng.uniform(2.0, 6.0))
    ksize = 2 * int(np.ceil(3 * sigma)) + 1
    blurred = cv2.GaussianBlur(image, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 1.5, borderType=cv2.BORDER_REFLECT)
    # The feather's tail is cut 3 px outside the region, the border allowance of the label rule.
    alpha = (alpha * _dilate(region, 3))[..., None]
    out = (image * (1 - alpha) + blurred * alpha).astype(np.float32)
    return Edit(out, _visible_mask(image, out, region), region)


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
        y, x = _random_point(fg, rng)
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


def check_types(types: Sequence[str], option: str = "types") -> tuple[str, ...]:
    types = tuple(types)
    bad = [t for t in types if t not in DAS_TYPES]
    if not types or bad or len(set(types)) != len(types):
        raise ValueError(f"DAS {option}={list(types)} is invalid: give distinct names from {list(DAS_TYPES)}")
    return types


def synthesize(
    image: np.ndarray,
    rng: np.random.Generator,
    types: Sequence[str] = DAS_TYPES,
    pool: Sequence[np.ndarray] = (),
    combined_prob: float = 0.25,
    foreground_aware: bool = True,
    max_tries: int = 3,
) -> Edit:
    """One DAS anomaly of a uniformly drawn type, or, with ``combined_prob``, 2–3 distinct types in sequence.

    Args:
        image: (S, S, 3) float32 RGB in [0, 1].
        rng: the sample's generator (the DataModule seeds it per sample and step).
        types: enabled types (Table III trains with one at a time).
        pool: the other shots (sources for misplaced patches).
        combined_prob: probability of a combined anomaly (needs two enabled types).
        foreground_aware: keep regions and crack seeds on the object of object categories.
        max_tries: redraw a type whose edit turned out invisible (an empty mask), e.g. a blur on a
            flat area; the last draw is kept whatever it is.

    Returns:
        :class:`Edit` with the union mask and region of all applied types.
    """
    types = check_types(types)
    image = np.ascontiguousarray(image, dtype=np.float32)
    fg = foreground_mask(image, foreground_aware)
    if len(types) > 1 and rng.random() < combined_prob:
        count = int(rng.integers(2, min(3, len(types)) + 1))
        chosen = [types[i] for i in rng.permutation(len(types))[:count]]
    else:
        chosen = [types[int(rng.integers(len(types)))]]
    out = image
    mask = np.zeros(image.shape[:2], dtype=np.float32)
    region = np.zeros(image.shape[:2], dtype=bool)
    for name in chosen:
        for _ in range(max_tries):
            edit = SYNTHESISERS[name](out, rng, fg, pool)
            if edit.mask.any():
                break
        out = edit.image
        mask = np.maximum(mask, edit.mask)
        region |= edit.region
    return Edit(out, mask, region)


class DASHook(SampleHook):
    """The DataModule's per-sample hook: adds ``synthetic_image`` and ``synthetic_mask`` to each shot.

    Configured as ``data.init_args.sample_hook: src.methods.vtfusion.das.DASHook`` with
    ``sample_hook_args: {types: [...], combined_prob: ..., foreground_aware: ...}``.

    Args:
        types: enabled anomaly types, a subset of ``misplaced, blur, crack, noise``.
        combined_prob: probability of a combined anomaly (2–3 types, union mask).
        foreground_aware: keep edits on the object of object categories.
    """

    image_keys = ("image", "synthetic_image")
    mask_keys = ("mask", "synthetic_mask")

    def __init__(
        self, types: Sequence[str] = DAS_TYPES, combined_prob: float = 0.25, foreground_aware: bool = True
    ) -> None:
        if not 0.0 <= combined_prob <= 1.0:
            raise ValueError(f"DASHook combined_prob must be in [0, 1], got {combined_prob}")
        self.types = check_types(types)
        self.combined_prob = float(combined_prob)
        self.foreground_aware = bool(foreground_aware)

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator, pool: list[np.ndarray]) -> dict[str, Any]:
        """``sample["image"]`` (S, S, 3) float32 in [0, 1] -> clean image, its mask, and the synthetic pair."""
        image = np.asarray(sample["image"], dtype=np.float32)
        edit = synthesize(image, rng, self.types, pool, self.combined_prob, self.foreground_aware)
        return {
            "image": image,
            "mask": np.zeros(image.shape[:2], dtype=np.float32),
            "synthetic_image": edit.image,
            "synthetic_mask": edit.mask,
        }

    def __repr__(self) -> str:
        return f"DASHook(types={list(self.types)}, combined_prob={self.combined_prob})"
