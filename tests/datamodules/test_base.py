"""File validation and the dataset item format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.base import AnomalyDataset, DatasetError, Sample, load_image, load_mask, validate_samples
from datamodules.folder import FolderReader
from datamodules.transforms import Preprocessor
from tests.datamodules.conftest import make_folder_dataset, write_mask


def test_valid_dataset_passes(folder_root):
    validate_samples(FolderReader().read(folder_root, "test"), "folder test")


def test_unreadable_image_names_the_file(folder_root):
    bad = folder_root / "widget" / "test" / "good" / "001.png"
    bad.write_bytes(b"this is not a PNG file at all")
    samples = FolderReader().read(folder_root, "test")
    with pytest.raises(DatasetError, match=rf"unreadable image file {bad}"):
        validate_samples(samples, "folder test")


def test_truncated_png_is_caught(folder_root):
    bad = folder_root / "widget" / "test" / "scratch" / "000.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DatasetError, match=str(bad)):
        validate_samples(FolderReader().read(folder_root, "test"), "folder test")


def test_mask_size_mismatch_names_both_files(tmp_path):
    root = make_folder_dataset(tmp_path / "m", "part")
    mask = write_mask(root / "part" / "ground_truth" / "dent" / "000_mask.png", (0, 0, 4, 4), size=(20, 20))
    image = root / "part" / "test" / "dent" / "000.png"
    with pytest.raises(DatasetError, match=rf"mask {mask} is 20x20 but its image {image} is 32x40"):
        validate_samples(FolderReader().read(root, "test"), "m")


def test_missing_file_and_empty_table(tmp_path):
    sample = Sample(str(tmp_path / "gone.png"), None, 0, "c", "good", "test")
    with pytest.raises(DatasetError, match="file not found: .*gone.png"):
        validate_samples([sample], "x")
    with pytest.raises(DatasetError, match="no images"):
        validate_samples([], "x")


def test_sample_rejects_inconsistent_records():
    with pytest.raises(DatasetError, match="label must be 0"):
        Sample("a.png", None, 2, "c", "good", "test")
    with pytest.raises(DatasetError, match="normal image cannot have a mask"):
        Sample("a.png", "a_mask.png", 0, "c", "good", "test")


def test_exif_orientation_ignored_like_masks(tmp_path):
    from PIL import Image

    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[274] = 6  # "rotate 90 CW" on display
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, exif=exif)
    assert load_image(path).shape == (20, 40, 3)  # stored geometry, the one its mask has


def test_integer_masks_binarised(tmp_path):
    path = write_mask(tmp_path / "m.png", (1, 1, 5, 5), value=1)
    mask = load_mask(path)
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0} and mask.sum() == 16


def test_item_format(folder_root):
    samples = FolderReader().read(folder_root, "test", ["widget"])
    item = AnomalyDataset(samples, Preprocessor(24))[4]
    assert set(item) == {"image", "mask", "label", "category", "defect_type", "path", "index", "has_mask"}
    assert item["image"].shape == (3, 24, 24) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (1, 24, 24) and set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert item["index"] == 4 and item["label"] == 1 and item["defect_type"] == "scratch"
