"""Build :class:`~src.contracts.Batch` records in tests without repeating every field.

``make_batch(image, ...)`` fills what a test does not care about the way a DataModule would for
unremarkable images: an all-zero mask, labels from the mask, category ``object``, defect type
``good``/``defect``, paths ``img<i>.png``, indices ``0..B-1``, every mask present.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from src.contracts import Batch


def make_batch(
    image: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    label: torch.Tensor | Sequence[int] | None = None,
    category: Sequence[str] | None = None,
    defect_type: Sequence[str] | None = None,
    path: Sequence[str] | None = None,
    index: torch.Tensor | Sequence[int] | None = None,
    has_mask: torch.Tensor | Sequence[bool] | None = None,
    synthetic_image: torch.Tensor | None = None,
    synthetic_mask: torch.Tensor | None = None,
) -> Batch:
    """A batch of ``image`` (B, 3, S, S); every other field as given or the default above."""
    b = image.shape[0]
    mask = torch.zeros(b, 1, *image.shape[-2:]) if mask is None else mask
    label = (mask.flatten(1).amax(1) > 0).long() if label is None else torch.as_tensor(label)
    return Batch(
        image=image,
        mask=mask,
        label=label,
        category=list(category) if category is not None else ["object"] * b,
        defect_type=list(defect_type) if defect_type is not None else
        ["defect" if y else "good" for y in label.tolist()],
        path=list(path) if path is not None else [f"img{i}.png" for i in range(b)],
        index=torch.as_tensor(index) if index is not None else torch.arange(b),
        has_mask=torch.as_tensor(has_mask) if has_mask is not None else torch.ones(b, dtype=torch.bool),
        synthetic_image=synthetic_image,
        synthetic_mask=synthetic_mask,
    )


def objects(images: torch.Tensor) -> list[str]:
    """One neutral category per image, for models that do not read categories (FB-CLIP, VTFusion)."""
    return ["object"] * images.shape[0]


def batch32() -> Batch:
    """Two seeded 32 px images: a normal ``pcb1`` and a ``screw`` with an 8 x 8 defect."""
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(2, 1, 32, 32)
    mask[1, :, 8:16, 16:24] = 1
    return make_batch(torch.randn(2, 3, 32, 32, generator=g), mask=mask, label=[0, 1], category=["pcb1", "screw"])
