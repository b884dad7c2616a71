"""DAS: VTFusion's dual-granularity anomaly synthesis (four types plus their combination).

The paper names the types (misplaced cut-and-paste, blurry, crack, noise) and shows combined
cases, but gives no parameters; every number here is our resolution (listed in the README).
All edits work on a float32 (S, S, 3) RGB image in [0, 1] (the resized image, before CLIP
normalisation) and return the edited image, its exact {0, 1} mask, and the *region* the edit was
allowed to touch (used by the tests' border allowance, never by training).

The pieces: ``das_regions.py`` (foreground, random regions, the visibility rule),
``das_types.py`` (the four generators and their labelling rules), this module (which types a
sample gets, and the DataModule hook).

:class:`DASHook` plugs this into the DataModule's generic per-sample hook; ``datamodules/`` never
imports it, the config names it by dotted path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from datamodules.base import SampleHook

from .das_regions import CHANGE_THRESHOLD, Edit, foreground_mask, perlin_noise, random_region
from .das_types import SYNTHESISERS, blur, crack, misplaced, noise

__all__ = ["CHANGE_THRESHOLD", "DAS_TYPES", "SYNTHESISERS", "DASHook", "Edit", "blur", "check_types", "crack",
           "foreground_mask", "misplaced", "noise", "perlin_noise", "random_region", "synthesize"]

DAS_TYPES = ("misplaced", "blur", "crack", "noise")


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
