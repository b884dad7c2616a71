"""Tiny on-disk datasets in MVTec and VisA layout, written into ``tmp_path`` by each test."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest


def write_image(path: Path, value: int, size: tuple[int, int] = (40, 32), grey: bool = False) -> Path:
    """A (H, W) = size image whose pixels encode ``value`` (grey) or a colour ramp derived from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    if grey:
        image = np.full((h, w), value, np.uint8)
    else:
        image = np.zeros((h, w, 3), np.uint8)
        image[..., 0] = value
        image[..., 1] = np.arange(w, dtype=np.uint8)[None, :] * 2
        image[..., 2] = 255 - value
    assert cv2.imwrite(str(path), image)
    return path


def write_mask(path: Path, box: tuple[int, int, int, int], size: tuple[int, int] = (40, 32), value: int = 255) -> Path:
    """Mask with ``value`` inside ``box`` = (top, left, bottom, right)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(size, np.uint8)
    top, left, bottom, right = box
    mask[top:bottom, left:right] = value
    assert cv2.imwrite(str(path), mask)
    return path


def make_folder_dataset(
    root: Path,
    category: str = "widget",
    n_train: int = 4,
    n_good: int = 2,
    defects: dict[str, int] | None = None,
    ext: str = ".png",
    mask_suffix: str = "_mask",
    mask_ext: str = ".png",
    with_masks: bool = True,
    grey: bool = False,
    size: tuple[int, int] = (40, 32),
) -> Path:
    """MVTec-layout category; defect image i has a mask box at rows [2 + 2i, 10 + 2i)."""
    defects = {"scratch": 2, "dent": 1} if defects is None else defects
    cat = root / category
    for i in range(n_train):
        write_image(cat / "train" / "good" / f"{i:03d}{ext}", 10 + i, size, grey)
    for i in range(n_good):
        write_image(cat / "test" / "good" / f"{i:03d}{ext}", 50 + i, size, grey)
    for d, (defect, count) in enumerate(defects.items()):
        for i in range(count):
            write_image(cat / "test" / defect / f"{i:03d}{ext}", 100 + 10 * d + i, size, grey)
            if with_masks:
                write_mask(
                    cat / "ground_truth" / defect / f"{i:03d}{mask_suffix}{mask_ext}",
                    (2 + 2 * i, 4, 10 + 2 * i, 12),
                    size,
                )
    return root


def make_visa_dataset(root: Path, categories: dict[str, tuple[int, int, int]], anno: bool = False) -> Path:
    """VisA layout: ``categories[name] = (train normal, test normal, test anomalous)``; masks hold 1s."""
    rows = []
    for category, (n_train, n_test_good, n_test_bad) in categories.items():
        normal_dir = Path(category) / "Data" / "Images" / "Normal"
        anomaly_dir = Path(category) / "Data" / "Images" / "Anomaly"
        mask_dir = Path(category) / "Data" / "Masks" / "Anomaly"
        for i in range(n_train + n_test_good):
            rel = normal_dir / f"{i:04d}.JPG"
            write_image(root / rel, 20 + i, (30, 45))
            rows.append([category, "train" if i < n_train else "test", "normal", str(rel), ""])
        anno_rows = []
        for i in range(n_test_bad):
            rel, mrel = anomaly_dir / f"{i:03d}.JPG", mask_dir / f"{i:03d}.png"
            write_image(root / rel, 200 + i, (30, 45))
            write_mask(root / mrel, (5, 5, 15, 20), (30, 45), value=1)
            rows.append([category, "test", "anomaly", str(rel), str(mrel)])
            anno_rows.append([str(rel), "scratch" if i % 2 == 0 else "chip,burnt", str(mrel)])
        if anno:
            with open(root / category / "image_anno.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["image", "label", "mask"])
                writer.writerows(anno_rows)
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    with open(root / "split_csv" / "1cls.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["object", "split", "label", "image", "mask"])
        writer.writerows(rows)
    return root


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    root = tmp_path / "folder"
    make_folder_dataset(root, "widget")
    make_folder_dataset(root, "gadget", grey=True)
    return root
