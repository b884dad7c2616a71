"""Reader for any folder in MVTec layout (MVTec AD, BTAD, MPDD, the built-in benchmark, your own data).

Layout, per category::

    <root>/<category>/train/good/<stem>.<ext>             normal training images
    <root>/<category>/test/good/<stem>.<ext>              normal test images
    <root>/<category>/test/<defect>/<stem>.<ext>          anomalous test images
    <root>/<category>/ground_truth/<defect>/<stem><mask_suffix>.<mask_ext>   optional masks

The label comes from the folder name (``normal_dirs``, default ``good``/``ok``/``normal`` -> 0,
anything else -> 1; the normal defect type is always reported as ``"good"``). Masks pair with
images by exact stem, never by sorted position. Sets without any ``ground_truth`` folder
(image-only) and sets without normal test images (all-anomalous) are both accepted: anomalous
images without a mask folder get ``has_mask=False`` so that metrics skip their pixels. If a mask
folder exists for a defect type, every image of that type must have its mask.

Public API: ``DEFAULT_IMAGE_EXTENSIONS``, ``DatasetReader`` (base class of all readers),
``FolderReader``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from datamodules.base import NORMAL_DEFECT, DatasetError, Sample, pair_masks_by_stem

DEFAULT_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SPLITS = ("train", "test")


class DatasetReader(ABC):
    """Turns a dataset root into :class:`Sample` records. Subclasses set ``name``."""

    name = "dataset"

    @abstractmethod
    def categories(self, root: str | os.PathLike) -> list[str]:
        """All categories available under ``root`` (sorted)."""

    @abstractmethod
    def read(self, root: str | os.PathLike, split: str, categories: Sequence[str] | None = None) -> list[Sample]:
        """Records of ``split`` ("train" or "test") for ``categories`` (None = all), category-major."""

    def check_root(self, root: str | os.PathLike | None) -> Path:
        """``root`` as an existing folder, or a :class:`DatasetError` saying how to set it."""
        if root is None:
            raise DatasetError(
                f"{self.name}: no dataset root given; set it with --data.init_args.root=<folder> "
                f"(or root: in the data section of the YAML config)"
            )
        path = Path(root).expanduser()
        if not path.is_dir():
            raise DatasetError(f"{self.name}: dataset root {path} does not exist or is not a folder")
        return path

    def select(self, root: str | os.PathLike, categories: Sequence[str] | None) -> list[str]:
        """Validate a category selection against what exists; None selects all."""
        available = self.categories(root)
        if categories is None:
            return available
        if isinstance(categories, str):
            categories = [categories]
        unknown = [c for c in categories if c not in available]
        if unknown:
            raise DatasetError(
                f"{self.name}: unknown categor{'y' if len(unknown) == 1 else 'ies'} {unknown} under {root}; "
                f"valid: {available}"
            )
        if len(set(categories)) != len(categories):
            raise DatasetError(f"{self.name}: categories list has duplicates: {list(categories)}")
        return list(categories)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got '{split}'")


class FolderReader(DatasetReader):
    """MVTec-layout folder reader.

    Args:
        image_extensions: accepted image file endings, case-insensitive.
        mask_suffix: appended to the image stem in mask names (``"_mask"``; ``""`` for BTAD-style
            masks named like their image).
        mask_extensions: accepted mask endings (default: ``image_extensions``).
        normal_dirs: folder names that hold normal images.
        known_categories: fixed category list (MVTec, built-in); None = every sub-folder of root
            that has a ``train`` or ``test`` folder.
    """

    name = "folder"

    def __init__(
        self,
        image_extensions: Sequence[str] = DEFAULT_IMAGE_EXTENSIONS,
        mask_suffix: str = "_mask",
        mask_extensions: Sequence[str] | None = None,
        normal_dirs: Sequence[str] = ("good", "ok", "normal"),
        known_categories: Sequence[str] | None = None,
    ) -> None:
        self.image_extensions = _normalise_extensions(image_extensions, "image_extensions")
        self.mask_extensions = (
            _normalise_extensions(mask_extensions, "mask_extensions") if mask_extensions else self.image_extensions
        )
        self.mask_suffix = mask_suffix
        self.normal_dirs = tuple(normal_dirs)
        self.known_categories = list(known_categories) if known_categories is not None else None

    def categories(self, root: str | os.PathLike | None) -> list[str]:
        """Category names: the fixed list when the dataset has one, else the sub-folders of ``root``."""
        if self.known_categories is not None:  # fixed list: usable before the data is there
            return list(self.known_categories)
        path = self.check_root(root)
        found = sorted(
            d.name
            for d in path.iterdir()
            if d.is_dir() and not d.name.startswith(".") and ((d / "train").is_dir() or (d / "test").is_dir())
        )
        if not found:
            raise DatasetError(
                f"{self.name}: no category folders under {path}; expected <root>/<category>/test/<good|defect>/ "
                f"(MVTec layout)"
            )
        return found

    def read(self, root: str | os.PathLike, split: str, categories: Sequence[str] | None = None) -> list[Sample]:
        """The samples of ``split`` (``train`` or ``test``) of the selected categories."""
        _check_split(split)
        path = self.check_root(root)
        samples: list[Sample] = []
        for category in self.select(path, categories):
            samples.extend(self._read_category(path / category, category, split))
        return samples

    def _read_category(self, cat_dir: Path, category: str, split: str) -> list[Sample]:
        if not cat_dir.is_dir():
            raise DatasetError(f"{self.name}: category folder {cat_dir} is missing (partial copy of the dataset?)")
        split_dir = cat_dir / split
        if not split_dir.is_dir():
            raise DatasetError(f"{self.name}: {split_dir} is missing; expected <category>/{split}/<good|defect>/")
        samples: list[Sample] = []
        for type_dir in sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            images = self._files(type_dir, self.image_extensions)
            is_normal = type_dir.name in self.normal_dirs
            if split == "train" and not is_normal:
                raise DatasetError(
                    f"{self.name}: {type_dir} is in the train split but is not a normal folder "
                    f"{list(self.normal_dirs)}; training images must be normal"
                )
            if is_normal:
                samples.extend(Sample(str(p), None, 0, category, NORMAL_DEFECT, split) for p in images)
                continue
            mask_dir = cat_dir / "ground_truth" / type_dir.name
            if mask_dir.is_dir():
                masks = pair_masks_by_stem(
                    images, self._files(mask_dir, self.mask_extensions), self.mask_suffix, self.name
                )
                missing = [p for p in images if p not in masks]
                if missing:
                    raise DatasetError(
                        f"{self.name}: image {missing[0]} has no mask in {mask_dir} (expected "
                        f"'{missing[0].stem}{self.mask_suffix}.<ext>'; {len(missing)} image(s) without mask)"
                    )
                samples.extend(Sample(str(p), str(masks[p]), 1, category, type_dir.name, split) for p in images)
            else:
                samples.extend(Sample(str(p), None, 1, category, type_dir.name, split, has_mask=False) for p in images)
        self._check_orphan_masks(cat_dir, split)
        if not samples:
            raise DatasetError(
                f"{self.name}: category '{category}' has no {split} images under {split_dir} "
                f"(extensions {list(self.image_extensions)})"
            )
        return samples

    def _check_orphan_masks(self, cat_dir: Path, split: str) -> None:
        """A ground-truth folder whose defect type has no test folder means a broken copy."""
        gt_dir = cat_dir / "ground_truth"
        if split != "test" or not gt_dir.is_dir():
            return
        for mask_dir in sorted(d for d in gt_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            if mask_dir.name in self.normal_dirs:
                continue  # normal images have all-zero masks by definition
            if not (cat_dir / "test" / mask_dir.name).is_dir() and self._files(mask_dir, self.mask_extensions):
                first = self._files(mask_dir, self.mask_extensions)[0]
                raise DatasetError(
                    f"{self.name}: mask {first} has no image: the folder {cat_dir / 'test' / mask_dir.name} is missing"
                )

    @staticmethod
    def _files(folder: Path, extensions: Sequence[str]) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


def _normalise_extensions(extensions: Sequence[str], option: str) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = [extensions]
    out = []
    for ext in extensions:
        if not isinstance(ext, str) or not ext.strip("."):
            raise DatasetError(f"{option}: invalid extension {ext!r}; expected e.g. '.png'")
        out.append("." + ext.lower().lstrip("."))
    return tuple(out)
