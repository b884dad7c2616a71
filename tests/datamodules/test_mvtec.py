"""MVTec reader and the published-count check."""

from __future__ import annotations

import shutil

import pytest

from datamodules import mvtec
from datamodules.base import DatasetError
from datamodules.folder import FolderReader
from datamodules.mvtec import EXPECTED_COUNTS, MVTEC_CATEGORIES, MVTecReader, check_counts
from tests.datamodules.conftest import make_folder_dataset


def test_published_table_sums_to_the_totals():
    assert sorted(EXPECTED_COUNTS) == sorted(MVTEC_CATEGORIES)
    assert sum(c[0] for c in EXPECTED_COUNTS.values()) == 3629
    assert sum(c[1] for c in EXPECTED_COUNTS.values()) == 467
    assert sum(c[2] for c in EXPECTED_COUNTS.values()) == 1258


@pytest.fixture
def tiny_mvtec(tmp_path, monkeypatch):
    """All 15 categories with 2 train, 1 good, 2 anomalous images; the expected table shrunk to match."""
    for category in MVTEC_CATEGORIES:
        make_folder_dataset(tmp_path, category, n_train=2, n_good=1, defects={"broken": 2}, size=(8, 8))
    monkeypatch.setattr(mvtec, "EXPECTED_COUNTS", {c: (2, 1, 2) for c in MVTEC_CATEGORIES})
    return tmp_path


def test_full_copy_passes_and_reads_all(tiny_mvtec):
    assert len(MVTecReader().read(tiny_mvtec, "test")) == 45
    assert len(MVTecReader().read(tiny_mvtec, "train")) == 30


def test_partial_copy_fails_loudly(tiny_mvtec):
    (tiny_mvtec / "pill" / "test" / "broken" / "001.png").unlink()
    (tiny_mvtec / "pill" / "ground_truth" / "broken" / "001_mask.png").unlink()
    with pytest.raises(DatasetError, match="pill: 1 anomalous test images, expected 2.*check_counts=False"):
        MVTecReader().read(tiny_mvtec, "test")
    assert len(MVTecReader(check_counts=False).read(tiny_mvtec, "test")) == 44
    assert len(MVTecReader().read(tiny_mvtec, "test", ["pill", "screw"])) == 5  # subsets are not checked


def test_missing_category_folder(tiny_mvtec):
    shutil.rmtree(tiny_mvtec / "zipper")
    with pytest.raises(DatasetError, match="zipper is missing"):
        MVTecReader().read(tiny_mvtec, "test")


def test_unknown_category_lists_valid(tiny_mvtec):
    with pytest.raises(DatasetError, match="unknown category.*metal_nut"):
        MVTecReader().read(tiny_mvtec, "test", ["metalnut"])


def test_check_counts_directly(folder_root):
    samples = FolderReader().read(folder_root, "train", ["widget"])
    check_counts(samples, "train", {"widget": (4, 0, 0)}, "x", "r")
    with pytest.raises(DatasetError, match="widget: 4 normal train images, expected 5"):
        check_counts(samples, "train", {"widget": (5, 0, 0)}, "x", "r")
