"""VisA reader: 1cls.csv rows, integer masks, defect types, count check."""

from __future__ import annotations

import pytest

from datamodules import visa
from datamodules.base import AnomalyDataset, DatasetError, validate_samples
from datamodules.transforms import Preprocessor
from datamodules.visa import EXPECTED_COUNTS, VISA_CATEGORIES, VisaReader
from tests.datamodules.conftest import make_visa_dataset


def test_expected_counts_match_published_totals():
    assert sorted(EXPECTED_COUNTS) == sorted(VISA_CATEGORIES)
    assert sum(c[0] for c in EXPECTED_COUNTS.values()) == 8659
    assert sum(c[1] for c in EXPECTED_COUNTS.values()) == 962
    assert sum(c[2] for c in EXPECTED_COUNTS.values()) == 1200


def test_reads_rows_and_binarises_integer_masks(tmp_path):
    root = make_visa_dataset(tmp_path, {"candle": (3, 2, 2), "pcb1": (2, 1, 1)})
    reader = VisaReader()
    test = reader.read(root, "test", ["candle"])
    assert [s.label for s in test] == [0, 0, 1, 1]
    assert [s.defect_type for s in test] == ["good", "good", "anomaly", "anomaly"]
    assert all(s.image_path.startswith(str(root)) for s in test)
    validate_samples(test, "visa test")
    item = AnomalyDataset(test, Preprocessor(15))[3]
    assert item["image"].shape == (3, 15, 15)  # non-square JPEG resized straight to a square
    assert item["mask"].max() == 1.0 and item["mask"].sum() > 0
    assert len(reader.read(root, "train", ["candle", "pcb1"])) == 5
    with pytest.raises(DatasetError, match="category .capsules. has no train rows"):
        reader.read(root, "train")  # a partial copy read as the full list


def test_defect_types_from_image_anno(tmp_path):
    root = make_visa_dataset(tmp_path, {"cashew": (1, 1, 2)}, anno=True)
    test = VisaReader().read(root, "test", ["cashew"])
    assert [s.defect_type for s in test] == ["good", "scratch", "chip,burnt"]
    anno = root / "cashew" / "image_anno.csv"  # file names instead of root-relative paths also match
    anno.write_text(anno.read_text().replace("cashew/Data/Images/Anomaly/", ""))
    assert [s.defect_type for s in VisaReader().read(root, "test", ["cashew"])] == ["good", "scratch", "chip,burnt"]


def test_counts_asserted_on_full_list(tmp_path, monkeypatch):
    root = make_visa_dataset(tmp_path, {c: (1, 1, 1) for c in VISA_CATEGORIES})
    monkeypatch.setattr(visa, "EXPECTED_COUNTS", {c: (1, 1, 1) for c in VISA_CATEGORIES})
    assert len(VisaReader().read(root, "test")) == 24
    monkeypatch.setattr(visa, "EXPECTED_COUNTS", {c: (1, 1, 2) for c in VISA_CATEGORIES})
    with pytest.raises(DatasetError, match="candle: 1 anomalous test images, expected 2"):
        VisaReader().read(root, "test")
    assert len(VisaReader(check_counts=False).read(root, "test")) == 24


def test_bad_csv(tmp_path):
    with pytest.raises(DatasetError, match=r"split_csv/1cls\.csv not found"):
        VisaReader().read(tmp_path, "test")
    root = make_visa_dataset(tmp_path, {"fryum": (1, 1, 1)})
    csv_path = root / "split_csv" / "1cls.csv"
    csv_path.write_text(csv_path.read_text().replace(",anomaly,", ",broken,"))
    with pytest.raises(DatasetError, match="line 4: label 'broken'"):
        VisaReader().read(root, "test", ["fryum"])
    csv_path.write_text("object,split,image\nfryum,test,x.JPG\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) \['label', 'mask'\]"):
        VisaReader().read(root, "test")


def test_unknown_category(tmp_path):
    root = make_visa_dataset(tmp_path, {"fryum": (1, 1, 1)})
    with pytest.raises(DatasetError, match="unknown category.*pipe_fryum"):
        VisaReader().read(root, "test", ["pipefryum"])
    with pytest.raises(DatasetError, match="'candle' has no test rows"):
        VisaReader().read(root, "test", ["candle"])
