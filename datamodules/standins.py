"""Stand-in datasets: the real folder layouts and split sizes of MVTec AD, VisA, BTAD and MPDD, tiny images.

They exist so that a paper command can be rehearsed end to end before the real data is there
(``make rehearse``): the readers (``mvtec.py``, ``visa.py``, ``folder.py``) read them unmodified
and their count checks pass because every category has its published number of images per split.
The pictures are a few pixels of seeded noise; an anomalous image carries a bright square that its
mask marks. Numbers measured on them say nothing about any method.

* MVTec AD: 15 categories with their real defect folders, ``<stem>_mask.png`` masks (0/255),
  single-channel PNGs for grid, screw and zipper. Per-category counts are the reader's table; the
  split of each category's anomalous images over its defect folders follows the distributed copy
  as far as we know it (the per-category sums are checked against the reader's table).
* VisA: 12 categories, ``<cat>/Data/Images/{Normal,Anomaly}/*.JPG``, integer-valued PNG masks in
  ``<cat>/Data/Masks/Anomaly``, and ``split_csv/1cls.csv`` with the reader's per-category counts.
* BTAD: categories 01-03, ``train/ok``, ``test/{ok,ko}``, ``.bmp`` images, masks in
  ``ground_truth/ko`` named exactly like their image (read with ``mask_suffix=""``).
* MPDD: 6 categories in MVTec layout with ``_mask`` masks.
  BTAD and MPDD have no count check in the suite; their sizes are the published totals (BTAD 1,799
  train / 741 test, MPDD 888 / 458) split per category as distributed, to our knowledge.

Every generated root holds ``.standin.json`` (what made it). A folder that exists without that
marker, or with different content, is never written into.

    python -m datamodules.standins mvtec|visa|btad|mpdd|all --root DIR [--size 16] [--seed 0]

Public API: ``STANDINS``, ``MVTEC_DEFECTS``, ``BTAD_COUNTS``, ``MPDD_LAYOUT``, ``generate``, ``main``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.mvtec import EXPECTED_COUNTS as MVTEC_COUNTS
from datamodules.mvtec import MVTEC_CATEGORIES
from datamodules.visa import EXPECTED_COUNTS as VISA_COUNTS
from datamodules.visa import SPLIT_CSV, VISA_CATEGORIES

MARKER = ".standin.json"
FORMAT_VERSION = 1

# category -> {defect folder: anomalous test images}
MVTEC_DEFECTS: dict[str, dict[str, int]] = {
    "bottle": {"broken_large": 20, "broken_small": 22, "contamination": 21},
    "cable": {"bent_wire": 13, "cable_swap": 12, "combined": 11, "cut_inner_insulation": 14,
              "cut_outer_insulation": 10, "missing_cable": 12, "missing_wire": 10, "poke_insulation": 10},
    "capsule": {"crack": 23, "faulty_imprint": 22, "poke": 21, "scratch": 23, "squeeze": 20},
    "carpet": {"color": 19, "cut": 17, "hole": 17, "metal_contamination": 17, "thread": 19},
    "grid": {"bent": 12, "broken": 12, "glue": 11, "metal_contamination": 11, "thread": 11},
    "hazelnut": {"crack": 18, "cut": 17, "hole": 18, "print": 17},
    "leather": {"color": 19, "cut": 19, "fold": 17, "glue": 19, "poke": 18},
    "metal_nut": {"bent": 25, "color": 22, "flip": 23, "scratch": 23},
    "pill": {"color": 25, "combined": 17, "contamination": 21, "crack": 26, "faulty_imprint": 19,
             "pill_type": 9, "scratch": 24},
    "screw": {"manipulated_front": 24, "scratch_head": 24, "scratch_neck": 25, "thread_side": 23,
              "thread_top": 23},
    "tile": {"crack": 17, "glue_strip": 18, "gray_stroke": 16, "oil": 18, "rough": 15},
    "toothbrush": {"defective": 30},
    "transistor": {"bent_lead": 10, "cut_lead": 10, "damaged_case": 10, "misplaced": 10},
    "wood": {"color": 8, "combined": 11, "hole": 10, "liquid": 10, "scratch": 21},
    "zipper": {"broken_teeth": 19, "combined": 16, "fabric_border": 17, "fabric_interior": 16, "rough": 17,
               "split_teeth": 18, "squeezed_teeth": 16},
}  # fmt: skip
MVTEC_GREY = ("grid", "screw", "zipper")

# category -> (train ok, test ok, test ko)
BTAD_COUNTS: dict[str, tuple[int, int, int]] = {"01": (400, 21, 49), "02": (399, 30, 200), "03": (1000, 41, 400)}

# category -> (train good, test good, {defect folder: images})
MPDD_LAYOUT: dict[str, tuple[int, int, dict[str, int]]] = {
    "bracket_black": (289, 32, {"hole": 12, "scratches": 35}),
    "bracket_brown": (185, 26, {"bend_and_parts_mismatch": 17, "parts_mismatch": 34}),
    "bracket_white": (110, 30, {"defective_painting": 13, "scratches": 17}),
    "connector": (128, 30, {"parts_mismatch": 14}),
    "metal_plate": (54, 26, {"major_rust": 14, "scratches": 34, "total_rust": 23}),
    "tubes": (122, 32, {"anomalous": 69}),
}  # fmt: skip


class StandinError(ValueError):
    """The target folder cannot take a stand-in (it holds something else)."""


class _Painter:
    """Seeded tiny images: noise, plus a bright square (and its mask) for anomalous ones."""

    def __init__(self, size: tuple[int, int], seed: int) -> None:
        self.width, self.height = size
        self.rng = np.random.default_rng(seed)

    def image(self, grey: bool = False) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8 noise."""
        shape = (self.height, self.width) if grey else (self.height, self.width, 3)
        return self.rng.integers(40, 120, size=shape, dtype=np.uint8)

    def defect(self, grey: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """An image and its boolean (H, W) defect region."""
        picture = self.image(grey)
        side = max(2, min(self.width, self.height) // 4)
        top = int(self.rng.integers(0, self.height - side + 1))
        left = int(self.rng.integers(0, self.width - side + 1))
        region = np.zeros((self.height, self.width), dtype=bool)
        region[top:top + side, left:left + side] = True
        picture[region] = 250
        return picture, region


def _save(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


def _mvtec_layout(root: Path, painter: _Painter, category: str, train: int, good: int,
                  defects: dict[str, int], ext: str, mask_suffix: str, mask_ext: str, grey: bool = False,
                  normal: str = "good") -> None:
    """One category in MVTec layout (also BTAD's and MPDD's)."""
    cat = root / category
    for split, count in (("train", train), ("test", good)):
        folder = cat / split / normal
        folder.mkdir(parents=True)
        for i in range(count):
            _save(painter.image(grey), folder / f"{i:03d}{ext}")
    for defect, count in defects.items():
        images, masks = cat / "test" / defect, cat / "ground_truth" / defect
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for i in range(count):
            picture, region = painter.defect(grey)
            _save(picture, images / f"{i:03d}{ext}")
            _save(region.astype(np.uint8) * 255, masks / f"{i:03d}{mask_suffix}{mask_ext}")


def _mvtec(root: Path, painter: _Painter) -> None:
    for category in MVTEC_CATEGORIES:
        train, good, anomalous = MVTEC_COUNTS[category]
        if sum(MVTEC_DEFECTS[category].values()) != anomalous:  # the table above against the reader's
            raise AssertionError(f"MVTEC_DEFECTS[{category}] sums to {sum(MVTEC_DEFECTS[category].values())}, "
                                 f"the reader expects {anomalous}")
        _mvtec_layout(root, painter, category, train, good, MVTEC_DEFECTS[category], ".png", "_mask", ".png",
                      grey=category in MVTEC_GREY)


def _btad(root: Path, painter: _Painter) -> None:
    for category, (train, good, bad) in BTAD_COUNTS.items():
        _mvtec_layout(root, painter, category, train, good, {"ko": bad}, ".bmp", "", ".png", normal="ok")


def _mpdd(root: Path, painter: _Painter) -> None:
    for category, (train, good, defects) in MPDD_LAYOUT.items():
        _mvtec_layout(root, painter, category, train, good, defects, ".png", "_mask", ".png")


def _visa(root: Path, painter: _Painter) -> None:
    """VisA's raw layout plus ``split_csv/1cls.csv``; masks hold the integer 1 on the defect (not 255)."""
    rows: list[tuple[str, str, str, str, str]] = []
    for category in VISA_CATEGORIES:
        train, good, anomalous = VISA_COUNTS[category]
        normal_dir = root / category / "Data" / "Images" / "Normal"
        anomaly_dir = root / category / "Data" / "Images" / "Anomaly"
        mask_dir = root / category / "Data" / "Masks" / "Anomaly"
        for folder in (normal_dir, anomaly_dir, mask_dir):
            folder.mkdir(parents=True)
        for i in range(train + good):
            name = f"{i:04d}.JPG"
            Image.fromarray(painter.image()).save(normal_dir / name, format="JPEG", quality=95)
            rel = f"{category}/Data/Images/Normal/{name}"
            rows.append((category, "train" if i < train else "test", "normal", rel, ""))
        for i in range(anomalous):
            picture, region = painter.defect()
            Image.fromarray(picture).save(anomaly_dir / f"{i:03d}.JPG", format="JPEG", quality=95)
            _save(region.astype(np.uint8), mask_dir / f"{i:03d}.png")
            rows.append((category, "test", "anomaly", f"{category}/Data/Images/Anomaly/{i:03d}.JPG",
                         f"{category}/Data/Masks/Anomaly/{i:03d}.png"))
    (root / SPLIT_CSV).parent.mkdir(parents=True)
    with open(root / SPLIT_CSV, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("object", "split", "label", "image", "mask"))
        writer.writerows(rows)


# name -> (writer, image (width, height) for a given side: VisA's pictures are not square)
STANDINS: dict[str, tuple[Callable[[Path, _Painter], None], Callable[[int], tuple[int, int]]]] = {
    "mvtec": (_mvtec, lambda s: (s, s)),
    "visa": (_visa, lambda s: (s + s // 4, s)),
    "btad": (_btad, lambda s: (s, s)),
    "mpdd": (_mpdd, lambda s: (s, s)),
}


def generate(name: str, root: str | Path, size: int = 16, seed: int = 0) -> Path:
    """Write the stand-in ``name`` under ``root`` (reused when an identical one is already there).

    Args:
        name: one of ``STANDINS``.
        root: folder to create; it must not exist, or hold a stand-in made with the same options.
        size: image height in pixels (>= 8; VisA images are 1.25x as wide).
        seed: seed of the pictures.

    Returns:
        The root folder.
    """
    if name not in STANDINS:
        raise StandinError(f"unknown stand-in {name!r}; valid: {sorted(STANDINS)}")
    if size < 8:
        raise StandinError(f"--size {size}: images must be at least 8 pixels high")
    root = Path(root)
    wanted = {"standin": name, "size": size, "seed": seed, "format": FORMAT_VERSION}
    if root.exists():
        marker = root / MARKER
        found = json.loads(marker.read_text()) if marker.is_file() else None
        if found == wanted:
            return root
        if found is None and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        else:
            why = "another stand-in " + json.dumps(found) if found else "files that are not a stand-in"
            raise StandinError(f"{root} already holds {why}; choose an empty or new folder (nothing was written)")
    writer, shape = STANDINS[name]
    partial = root.with_name(root.name + ".partial")
    if partial.exists():  # an interrupted generation of ours: only stand-in files, safe to redo
        import shutil

        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    writer(partial, _Painter(shape(size), seed))
    (partial / MARKER).write_text(json.dumps(wanted) + "\n")
    partial.rename(root)  # a half-written stand-in never looks complete
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the stand-in folders of one dataset (or all); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m datamodules.standins", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=[*STANDINS, "all"])
    parser.add_argument("--root", required=True, help="folder to create (for 'all': parent of one folder each)")
    parser.add_argument("--size", type=int, default=16, help="image height in pixels (default 16)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = list(STANDINS) if args.dataset == "all" else [args.dataset]
    for name in names:
        target = Path(args.root) / name if args.dataset == "all" else Path(args.root)
        started = time.time()
        try:
            generate(name, target, args.size, args.seed)
        except StandinError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{name}: stand-in at {target} ({time.time() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
