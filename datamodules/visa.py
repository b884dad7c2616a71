"""VisA reader: rows of ``split_csv/1cls.csv`` (the field's split), counts asserted.

CSV columns: ``object, split, label, image, mask``; ``split`` is ``train``/``test``, ``label``
``normal``/``anomaly``, and ``image``/``mask`` are paths relative to the VisA root (mask empty for
normal rows). Masks hold small integer values and are binarised with ``> 0`` on load. Defect
type: ``"good"`` for normal images; for anomalous ones the ``label`` column of the optional
``<root>/<category>/image_anno.csv`` (matched by image path), else ``"anomaly"``.

When all 12 categories are read and ``check_counts`` is True, per-category counts must equal
``EXPECTED_COUNTS`` (8,659 train; 962 normal + 1,200 anomalous test).

Public API: ``VISA_CATEGORIES``, ``EXPECTED_COUNTS``, ``VisaReader``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from datamodules.base import NORMAL_DEFECT, DatasetError, Sample
from datamodules.folder import DatasetReader, _check_split
from datamodules.mvtec import check_counts

VISA_CATEGORIES = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2",
    "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
)  # fmt: skip

# category -> (train, test normal, test anomalous); 1cls holds out ~10 % of the normal images.
EXPECTED_COUNTS: dict[str, tuple[int, int, int]] = {
    "candle": (900, 100, 100),
    "capsules": (542, 60, 100),
    "cashew": (450, 50, 100),
    "chewinggum": (453, 50, 100),
    "fryum": (450, 50, 100),
    "macaroni1": (900, 100, 100),
    "macaroni2": (900, 100, 100),
    "pcb1": (904, 100, 100),
    "pcb2": (901, 100, 100),
    "pcb3": (905, 101, 100),
    "pcb4": (904, 101, 100),
    "pipe_fryum": (450, 50, 100),
}

SPLIT_CSV = Path("split_csv") / "1cls.csv"
CSV_COLUMNS = ("object", "split", "label", "image", "mask")
LABELS = {"normal": 0, "anomaly": 1}


class VisaReader(DatasetReader):
    """VisA from ``split_csv/1cls.csv``; ``check_counts`` asserts counts when all categories are read."""

    name = "visa"

    def __init__(self, check_counts: bool = True) -> None:
        self.check_counts = check_counts

    def categories(self, root: str | os.PathLike | None = None) -> list[str]:
        """VisA's twelve categories (a fixed list)."""
        return list(VISA_CATEGORIES)

    def read(self, root: str | os.PathLike, split: str, categories: Sequence[str] | None = None) -> list[Sample]:
        """The samples of ``split`` as VisA's ``split_csv/1cls.csv`` assigns them."""
        _check_split(split)
        path = self.check_root(root)
        selected = self.select(path, categories)
        rows = self._rows(path)
        samples = []
        for category in selected:
            defect_types = self._defect_types(path, category)
            chosen = [r for r in rows if r["object"] == category and r["split"] == split]
            if not chosen:
                raise DatasetError(f"visa: category '{category}' has no {split} rows in {path / SPLIT_CSV}")
            for row in chosen:
                label = LABELS[row["label"]]
                mask = row["mask"].strip() if label == 1 else ""
                if label == 1 and not mask:
                    raise DatasetError(f"visa: anomalous row {row['image']} in {path / SPLIT_CSV} has no mask")
                defect = NORMAL_DEFECT
                if label == 1:
                    defect = defect_types.get(row["image"], defect_types.get(Path(row["image"]).name, "anomaly"))
                samples.append(
                    Sample(str(path / row["image"]), str(path / mask) if mask else None, label, category, defect, split)
                )
        if self.check_counts and sorted(selected) == sorted(VISA_CATEGORIES):
            check_counts(samples, split, EXPECTED_COUNTS, self.name, str(path))
        return samples

    @staticmethod
    def _rows(root: Path) -> list[dict[str, str]]:
        csv_path = root / SPLIT_CSV
        if not csv_path.is_file():
            raise DatasetError(
                f"visa: {csv_path} not found; expected the VisA root with split_csv/1cls.csv "
                "(columns object,split,label,image,mask)"
            )
        with open(csv_path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"visa: {csv_path} lacks column(s) {missing}; found {reader.fieldnames}")
            rows = list(reader)
        for line, row in enumerate(rows, start=2):
            if row["label"] not in LABELS:
                raise DatasetError(
                    f"visa: {csv_path} line {line}: label '{row['label']}' is not one of {sorted(LABELS)}"
                )
            if row["split"] not in ("train", "test"):
                raise DatasetError(f"visa: {csv_path} line {line}: split '{row['split']}' is not train/test")
        return rows

    @staticmethod
    def _defect_types(root: Path, category: str) -> dict[str, str]:
        """Image path (relative to root) and file name -> defect label from ``<category>/image_anno.csv``.

        Only anomalous rows are kept, so the file-name fallback cannot confuse ``Normal/000.JPG``
        with ``Anomaly/000.JPG``.
        """
        anno = root / category / "image_anno.csv"
        if not anno.is_file():
            return {}
        with open(anno, newline="") as handle:
            reader = csv.DictReader(handle)
            if "image" not in (reader.fieldnames or []) or "label" not in (reader.fieldnames or []):
                return {}
            types = {}
            for row in reader:
                label = row["label"].strip()
                if label and label != "normal":
                    types[row["image"]] = label
                    types.setdefault(Path(row["image"]).name, label)
            return types
