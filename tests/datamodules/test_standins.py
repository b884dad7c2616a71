"""Stand-in datasets: the real readers accept them unmodified, with the published counts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from PIL import Image

from datamodules.mvtec import EXPECTED_COUNTS as MVTEC_COUNTS
from datamodules.registry import make_reader
from datamodules.standins import BTAD_COUNTS, MARKER, MPDD_LAYOUT, MVTEC_DEFECTS, StandinError, generate, main
from datamodules.visa import EXPECTED_COUNTS as VISA_COUNTS


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    return {name: generate(name, root / name, size=8) for name in ("mvtec", "visa", "btad", "mpdd")}


def _counts(samples):
    return Counter((s.category, s.label) for s in samples)


def test_mvtec_counts_defects_and_masks(standins):
    reader = make_reader("mvtec")  # count check on: it raises on any wrong per-category number
    train, test = reader.read(standins["mvtec"], "train"), reader.read(standins["mvtec"], "test")
    assert (len(train), len(test), sum(s.label for s in test)) == (3629, 1725, 1258)
    assert {c: n for (c, label), n in _counts(train).items()} == {c: v[0] for c, v in MVTEC_COUNTS.items()}
    defects = Counter((s.category, s.defect_type) for s in test if s.label == 1)
    assert len(defects) == 73
    assert defects == Counter({(c, d): n for c, per in MVTEC_DEFECTS.items() for d, n in per.items()})
    anomalous = next(s for s in test if s.category == "screw" and s.label == 1)
    image, mask = np.asarray(Image.open(anomalous.image_path)), np.asarray(Image.open(anomalous.mask_path))
    assert image.ndim == 2 and anomalous.mask_path.endswith("_mask.png")  # screw is grey in MVTec AD
    assert set(np.unique(mask)) == {0, 255} and (image[mask > 0] == 250).all()


def test_visa_counts_split_csv_and_integer_masks(standins):
    reader = make_reader("visa")
    train, test = reader.read(standins["visa"], "train"), reader.read(standins["visa"], "test")
    assert (len(train), len(test), sum(s.label for s in test)) == (8659, 2162, 1200)
    assert _counts(test) == Counter({**{(c, 0): v[1] for c, v in VISA_COUNTS.items()},
                                     **{(c, 1): v[2] for c, v in VISA_COUNTS.items()}})
    anomalous = next(s for s in test if s.label == 1)
    mask = np.asarray(Image.open(anomalous.mask_path))
    assert set(np.unique(mask)) == {0, 1}  # VisA masks are small integers, not 0/255
    assert anomalous.image_path.endswith(".JPG") and "/Data/Images/Anomaly/" in anomalous.image_path
    assert Image.open(anomalous.image_path).size == (10, 8)  # not square, as VisA


def test_btad_bmp_without_mask_suffix_and_mpdd(standins):
    btad = make_reader("folder", mask_suffix="").read(standins["btad"], "test")
    assert _counts(btad) == Counter({**{(c, 0): v[1] for c, v in BTAD_COUNTS.items()},
                                     **{(c, 1): v[2] for c, v in BTAD_COUNTS.items()}})
    bad = next(s for s in btad if s.label == 1)
    assert bad.image_path.endswith(".bmp") and bad.mask_path.endswith("/ground_truth/ko/000.png")
    assert sum(v[0] for v in BTAD_COUNTS.values()) == 1799
    mpdd = make_reader("folder").read(standins["mpdd"], "test")
    assert len(mpdd) == 458 and sum(v[0] for v in MPDD_LAYOUT.values()) == 888
    assert {s.defect_type for s in mpdd if s.category == "metal_plate" and s.label} == {"major_rust", "scratches",
                                                                                          "total_rust"}


def test_existing_folders_are_reused_or_refused(tmp_path, standins):
    assert generate("btad", standins["btad"], size=8) == standins["btad"]  # identical: reused, not rewritten
    with pytest.raises(StandinError, match="another stand-in"):
        generate("btad", standins["btad"], size=12)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("user data")
    with pytest.raises(StandinError, match="not a stand-in"):
        generate("mpdd", mine)
    assert (mine / "notes.txt").read_text() == "user data" and not (mine / MARKER).exists()
    with pytest.raises(StandinError, match="unknown stand-in"):
        generate("mvtec2", tmp_path / "x")
    assert main(["btad", "--root", str(mine)]) == 2
