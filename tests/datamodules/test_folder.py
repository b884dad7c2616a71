"""Folder reader (MVTec layout): labels, stem pairing, BTAD naming, image-only and all-anomalous sets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datamodules.base import AnomalyDataset, DatasetError, load_image, load_mask
from datamodules.folder import FolderReader
from datamodules.transforms import Preprocessor
from tests.datamodules.conftest import make_folder_dataset, write_image, write_mask


def test_reads_labels_defects_and_masks(folder_root):
    (folder_root / "widget" / "test" / ".ipynb_checkpoints").mkdir()  # hidden folders are not defect types
    (folder_root / ".cache" / "test").mkdir(parents=True)
    reader = FolderReader()
    assert reader.categories(folder_root) == ["gadget", "widget"]
    test = reader.read(folder_root, "test", ["widget"])
    assert [(s.defect_type, s.label) for s in test] == [
        ("dent", 1),
        ("good", 0),
        ("good", 0),
        ("scratch", 1),
        ("scratch", 1),
    ]
    for sample in test:
        assert (sample.mask_path is None) == (sample.label == 0)
        assert sample.has_mask and sample.split == "test" and sample.category == "widget"
    train = reader.read(folder_root, "train")
    assert len(train) == 8 and all(s.label == 0 and s.defect_type == "good" for s in train)


def test_grey_images_become_rgb(folder_root):
    sample = FolderReader().read(folder_root, "train", ["gadget"])[0]
    assert cv2.imread(sample.image_path, cv2.IMREAD_UNCHANGED).ndim == 2
    image = load_image(sample.image_path)
    assert image.shape == (40, 32, 3) and image.dtype == np.uint8
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()


def test_masks_pair_by_stem_not_sorted_position(tmp_path):
    # Sorted, "1" < "10" < "2" for images but "10_mask" < "1_mask" < "2_mask" for masks ('0' < '_'):
    # pairing by position would give image 1 the mask of image 10.
    cat = tmp_path / "root" / "thing"
    write_image(cat / "train" / "good" / "0.png", 1)
    boxes = {"1": (0, 0, 4, 4), "10": (10, 10, 20, 20), "2": (30, 20, 40, 32)}
    for stem, box in boxes.items():
        write_image(cat / "test" / "crack" / f"{stem}.png", int(stem))
        write_mask(cat / "ground_truth" / "crack" / f"{stem}_mask.png", box)
    samples = FolderReader().read(tmp_path / "root", "test")
    for sample in samples:
        stem = sample.image_path.rsplit("/", 1)[1][:-4]
        assert sample.mask_path.endswith(f"/{stem}_mask.png")
        top, left, bottom, right = boxes[stem]
        mask = load_mask(sample.mask_path)
        assert mask[top:bottom, left:right].all() and mask.sum() == (bottom - top) * (right - left)


def test_btad_style_bmp_masks_without_suffix(tmp_path):
    root = make_folder_dataset(tmp_path / "btad", "01", ext=".BMP", mask_suffix="", mask_ext=".png")
    reader = FolderReader(image_extensions=[".bmp"], mask_suffix="", mask_extensions=["png"])
    test = reader.read(root, "test")
    anomalous = [s for s in test if s.label == 1]
    assert len(anomalous) == 3 and all(s.mask_path.endswith(".png") for s in anomalous)
    assert all(s.image_path.endswith(".BMP") for s in test)
    # the default "_mask" suffix does not match BTAD names and must say so
    with pytest.raises(DatasetError, match="_mask"):
        FolderReader().read(root, "test")


def test_image_only_set_flags_missing_masks(tmp_path):
    root = make_folder_dataset(tmp_path / "plain", "part", with_masks=False)
    samples = FolderReader().read(root, "test")
    anomalous = [s for s in samples if s.label == 1]
    assert anomalous and all(not s.has_mask and s.mask_path is None for s in anomalous)
    assert all(s.has_mask for s in samples if s.label == 0)
    item = AnomalyDataset(samples, Preprocessor(16))[0]
    assert item["has_mask"] is False and item["label"] == 1 and float(item["mask"].sum()) == 0.0


def test_all_anomalous_set(tmp_path):
    root = make_folder_dataset(tmp_path / "bad", "part", n_good=0)
    samples = FolderReader().read(root, "test")
    assert samples and all(s.label == 1 and s.has_mask for s in samples)


def test_anomalous_image_without_its_mask_is_an_error(tmp_path):
    root = make_folder_dataset(tmp_path / "d", "part")
    (root / "part" / "ground_truth" / "scratch" / "001_mask.png").unlink()
    with pytest.raises(DatasetError, match=r"scratch/001\.png has no mask"):
        FolderReader().read(root, "test")


def test_unknown_and_empty_categories(folder_root, tmp_path):
    with pytest.raises(DatasetError, match=r"unknown category \['nope'\].*valid: \['gadget', 'widget'\]"):
        FolderReader().read(folder_root, "test", ["nope"])
    empty = tmp_path / "empty"
    (empty / "hollow" / "test" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="'hollow' has no test images"):
        FolderReader().read(empty, "test")
    with pytest.raises(DatasetError, match="no category folders"):
        FolderReader().read(tmp_path / "empty" / "hollow" / "test", "test")


def test_missing_root_names_it(tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "absent")):
        FolderReader().read(tmp_path / "absent", "test")
    with pytest.raises(DatasetError, match="no dataset root"):
        FolderReader().read(None, "test")


def test_orphan_masks(tmp_path):
    root = make_folder_dataset(tmp_path / "o", "part")
    write_mask(root / "part" / "ground_truth" / "scratch" / "007_mask.png", (0, 0, 3, 3))
    with pytest.raises(DatasetError, match=r"007_mask\.png has no image"):
        FolderReader().read(root, "test")
    root = make_folder_dataset(tmp_path / "p", "part")
    write_mask(root / "part" / "ground_truth" / "melted" / "000_mask.png", (0, 0, 3, 3))
    with pytest.raises(DatasetError, match=r"melted/000_mask\.png has no image"):
        FolderReader().read(root, "test")
