"""MVTec AD reader: 15 categories in MVTec layout, with the published counts asserted.

Layout: ``<cat>/train/good``, ``<cat>/test/<defect|good>``, ``<cat>/ground_truth/<defect>/<stem>_mask.png``
(see ``folder.py``). Grey categories (grid, screw, zipper) are converted to RGB on load.

When the full category list is read and ``check_counts`` is True, the number of images per split
and category must equal ``EXPECTED_COUNTS`` (the MVTec paper's table; totals 3,629 train, 467 +
1,258 test): a partial or mixed copy fails loudly instead of producing numbers that are not
comparable with published ones. A subset of categories is not count-checked (a deliberate trim).

Public API: ``MVTEC_CATEGORIES``, ``EXPECTED_COUNTS``, ``MVTecReader``, ``check_counts``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence

from datamodules.base import DatasetError, Sample
from datamodules.folder import FolderReader

MVTEC_CATEGORIES = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip

# category -> (train, test normal, test anomalous)
EXPECTED_COUNTS: dict[str, tuple[int, int, int]] = {
    "bottle": (209, 20, 63),
    "cable": (224, 58, 92),
    "capsule": (219, 23, 109),
    "carpet": (280, 28, 89),
    "grid": (264, 21, 57),
    "hazelnut": (391, 40, 70),
    "leather": (245, 32, 92),
    "metal_nut": (220, 22, 93),
    "pill": (267, 26, 141),
    "screw": (320, 41, 119),
    "tile": (230, 33, 84),
    "toothbrush": (60, 12, 30),
    "transistor": (213, 60, 40),
    "wood": (247, 19, 60),
    "zipper": (240, 32, 119),
}


def check_counts(
    samples: Sequence[Sample], split: str, expected: Mapping[str, tuple[int, int, int]], dataset: str, root: str
) -> None:
    """Compare per-category (normal, anomalous) counts of ``split`` with ``expected``.

    ``expected[category] = (train, test normal, test anomalous)``. Raises :class:`DatasetError`
    listing every mismatch.
    """
    found = Counter((s.category, s.label) for s in samples)
    problems = []
    for category in sorted({s.category for s in samples}):
        train, test_normal, test_anomalous = expected[category]
        want = {0: train, 1: 0} if split == "train" else {0: test_normal, 1: test_anomalous}
        for label, count in want.items():
            if found[(category, label)] != count:
                kind = "normal" if label == 0 else "anomalous"
                problems.append(f"{category}: {found[(category, label)]} {kind} {split} images, expected {count}")
    if problems:
        raise DatasetError(
            f"{dataset} at {root} does not match the published counts (partial or modified copy?): "
            + "; ".join(problems)
            + ". Fix the copy, or pass check_counts=False to use it anyway (results are then not "
            "comparable with published numbers)."
        )


class MVTecReader(FolderReader):
    """MVTec AD; ``check_counts`` asserts the published counts when all 15 categories are read."""

    name = "mvtec"

    def __init__(self, check_counts: bool = True) -> None:
        super().__init__(mask_suffix="_mask", known_categories=MVTEC_CATEGORIES)
        self.check_counts = check_counts

    def read(self, root: str | os.PathLike, split: str, categories: Sequence[str] | None = None) -> list[Sample]:
        """The folder layout's samples, with the published per-category counts checked on a full MVTec AD."""
        samples = super().read(root, split, categories)
        selected = self.select(root, categories)
        if self.check_counts and sorted(selected) == sorted(MVTEC_CATEGORIES):
            check_counts(samples, split, EXPECTED_COUNTS, self.name, str(root))
        return samples
