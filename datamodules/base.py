"""Sample table, file validation and the torch ``Dataset`` that every reader feeds.

A reader (``mvtec.py``, ``visa.py``, ``folder.py``, ``builtin.py``) turns a folder into a list of
:class:`Sample` records; :func:`validate_samples` checks every file before any training starts;
:class:`AnomalyDataset` loads, transforms and returns one item: a dict keyed by the fields of
:class:`src.contracts.Batch` (the batch contract, with shapes), which ``datamodules.loaders.collate_batch``
stacks into a ``Batch``.

Public API: ``DatasetError``, ``Sample``, ``NORMAL_DEFECT``, ``load_image``, ``load_mask``,
``validate_samples``, ``pair_masks_by_stem``, ``AnomalyDataset``, ``SampleHook`` (protocol).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageFile
from torch.utils.data import Dataset

from datamodules.transforms import Preprocessor

NORMAL_DEFECT = "good"


class DatasetError(ValueError):
    """A dataset folder, file or option is unusable; the message names it and what was expected."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset split.

    ``mask_path`` is None for normal images (their mask is all zero) and for anomalous images of
    sets without ground truth, which carry ``has_mask=False`` so that pixel metrics skip them.
    """

    image_path: str
    mask_path: str | None
    label: int
    category: str
    defect_type: str
    split: str
    has_mask: bool = True

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise DatasetError(f"{self.image_path}: label must be 0 (normal) or 1 (anomalous), got {self.label}")
        if self.label == 0 and self.mask_path is not None:
            raise DatasetError(f"{self.image_path}: a normal image cannot have a mask ({self.mask_path})")


class SampleHook:
    """Base class of per-sample train-time synthesis (e.g. VTFusion's DAS), configured by dotted path.

    Only subclasses are accepted by the DataModule's ``sample_hook`` option: a config cannot name an
    arbitrary callable (``subprocess.getoutput``) and have it run.

    Called after resize and before normalisation as ``hook(sample, rng, pool)`` with
    ``sample = {"image": float32 (S, S, 3) in [0, 1], "mask": float32 (S, S) in {0, 1},
    "label": int, "category": str, "path": str}``, ``rng = np.random.default_rng([seed, index])``
    and ``pool`` = the other shots of the same category (float32 (S, S, 3) in [0, 1]; empty outside
    the k-shot stream). Returns a dict: keys in ``image_keys`` (default ``("image",)``) are
    normalised to (3, S, S) tensors, keys in ``mask_keys`` (default ``("mask",)``) become (1, S, S)
    float tensors. Every key must be a field of :class:`src.contracts.Batch` (e.g. ``synthetic_image``,
    ``synthetic_mask``); an unknown key is refused when the batch is collated.
    """

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator, pool: list[np.ndarray]) -> dict[str, Any]:
        """Return ``sample`` with the hook's keys added; ``rng`` is the sample's generator, ``pool`` the other shots."""
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(sample, rng, pool)")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3); grey and 16-bit files are converted by OpenCV.

    EXIF orientation is ignored, as PIL (and so the papers' loaders) does and as masks are read,
    so that an image and its mask keep the same geometry.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DatasetError(f"cannot decode image {path}: expected a readable PNG/JPEG/BMP/TIFF file")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask as float32 (H, W) in {0, 1}: any non-zero value in any channel is anomalous.

    VisA masks hold small integers and MVTec masks 0/255, so ``> 0`` is the only safe rule.
    """
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DatasetError(f"cannot decode mask {path}: expected a readable single-channel image")
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return (mask > 0).astype(np.float32)


def _image_size(path: str) -> tuple[int, int]:
    """(width, height) of a file that decodes completely.

    PNG: ``verify`` walks the chunks (CRC) without decoding. Other formats (JPEG above all): ``verify``
    checks nothing, and OpenCV fills the rows of a truncated JPEG with one colour and scores it, so
    they are decoded in full with truncated images refused.
    """
    try:
        with Image.open(path) as image:
            size = image.size
            if image.format == "PNG":
                image.verify()
            else:
                ImageFile.LOAD_TRUNCATED_IMAGES = False
                image.load()
    except Exception as error:  # PIL raises many types for corrupt files; all mean "unreadable"
        raise DatasetError(f"unreadable image file {path}: {type(error).__name__}: {error}") from None
    return size


def validate_samples(samples: Sequence[Sample], what: str, num_threads: int = 8) -> None:
    """Check, before any training, that every image and mask exists, decodes and sizes match.

    Raises :class:`DatasetError` naming the offending file(s). PNGs are checked chunk by chunk (PIL
    ``verify``), other formats are fully decoded; on a small thread pool.
    """
    if not samples:
        raise DatasetError(f"{what}: no images found")
    paths = sorted({s.image_path for s in samples} | {s.mask_path for s in samples if s.mask_path})
    for path in paths:
        if not os.path.isfile(path):
            raise DatasetError(f"{what}: file not found: {path}")
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        sizes = dict(zip(paths, pool.map(_image_size, paths)))
    for sample in samples:
        if sample.mask_path and sizes[sample.mask_path] != sizes[sample.image_path]:
            raise DatasetError(
                f"{what}: mask {sample.mask_path} is {sizes[sample.mask_path][0]}x{sizes[sample.mask_path][1]} "
                f"but its image {sample.image_path} is {sizes[sample.image_path][0]}x"
                f"{sizes[sample.image_path][1]}; a mask must have its image's size"
            )


def pair_masks_by_stem(images: Sequence[Path], masks: Sequence[Path], mask_suffix: str, where: str) -> dict[Path, Path]:
    """Pair each mask with the image of the same stem (``000.png`` <-> ``000_mask.png``).

    Never pairs by sorted position: a renamed or missing file would silently shift every pair.
    Raises :class:`DatasetError` for a mask without an image or two masks for one image.
    """
    by_stem = {image.stem: image for image in images}
    pairs: dict[Path, Path] = {}
    for mask in masks:
        stem = mask.stem
        if mask_suffix:
            if not stem.endswith(mask_suffix):
                raise DatasetError(
                    f"{where}: mask {mask} does not end with the mask suffix '{mask_suffix}' "
                    f"(expected '<image stem>{mask_suffix}{mask.suffix}')"
                )
            stem = stem[: -len(mask_suffix)]
        image = by_stem.get(stem)
        if image is None:
            raise DatasetError(
                f"{where}: mask {mask} has no image; expected an image named '{stem}.<ext>' next to the "
                f"other images of that defect type"
            )
        if image in pairs:
            raise DatasetError(f"{where}: image {image} has two masks: {pairs[image]} and {mask}")
        pairs[image] = mask
    return pairs


class AnomalyDataset(Dataset):
    """Loads :class:`Sample` records into items keyed by the batch fields (see the module docstring).

    Args:
        samples: the split's records; ``index`` in the batch is the position in this list.
        preprocessor: resize / augmentation / normalisation (``datamodules.transforms``).
        augment: apply the preprocessor's train augmentation.
        sample_hook: optional per-sample synthesis, see :class:`SampleHook`.
        seed: seeds the hook's ``rng = default_rng([seed, index])``.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        preprocessor: Preprocessor,
        augment: bool = False,
        sample_hook: Callable[..., dict[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.preprocessor = preprocessor
        self.augment = augment
        self.sample_hook = sample_hook
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        image, mask = self.load_resized(sample)
        return self.finish(sample, image, mask, index, pool=[])

    def load_resized(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        """(S, S, 3) float32 RGB in [0, 1] and (S, S) float32 {0, 1} mask, before augmentation."""
        image = load_image(sample.image_path)
        if sample.mask_path is not None:
            mask = load_mask(sample.mask_path)
            if mask.shape != image.shape[:2]:
                raise DatasetError(
                    f"mask {sample.mask_path} has shape {mask.shape} but image {sample.image_path} has "
                    f"{image.shape[:2]}"
                )
        else:
            mask = np.zeros(image.shape[:2], dtype=np.float32)
        return self.preprocessor.resize(image, mask)

    def finish(
        self, sample: Sample, image: np.ndarray, mask: np.ndarray, index: int, pool: list[np.ndarray]
    ) -> dict[str, Any]:
        """Augment, run the sample hook, normalise; returns one batch-contract item."""
        if self.augment:
            image, mask = self.preprocessor.augment(image, mask)
        item: dict[str, Any] = {
            "image": image,
            "mask": mask,
            "label": sample.label,
            "category": sample.category,
            "defect_type": sample.defect_type,
            "path": sample.image_path,
            "index": index,
            "has_mask": sample.has_mask,
        }
        image_keys: Sequence[str] = ("image",)
        mask_keys: Sequence[str] = ("mask",)
        if self.sample_hook is not None:
            hook_input = {k: item[k] for k in ("image", "mask", "label", "category", "path")}
            out = self.sample_hook(hook_input, np.random.default_rng([self.seed, index]), pool)
            if not isinstance(out, dict):
                raise TypeError(
                    f"sample hook {type(self.sample_hook).__name__} returned {type(out).__name__}; "
                    "it must return a dict"
                )
            item.update(out)
            image_keys = tuple(getattr(self.sample_hook, "image_keys", image_keys))
            mask_keys = tuple(getattr(self.sample_hook, "mask_keys", mask_keys))
        for key in image_keys:
            item[key] = self.preprocessor.to_tensor(_as_array(item, key, 3))
        for key in mask_keys:
            item[key] = torch.from_numpy(np.ascontiguousarray(_as_array(item, key, 2), dtype=np.float32))[None]
        item["label"] = int(item["label"])
        return item


def _as_array(item: dict[str, Any], key: str, ndim: int) -> np.ndarray:
    value = item.get(key)
    if not isinstance(value, np.ndarray) or value.ndim != ndim:
        got = getattr(value, "shape", type(value).__name__)
        expected = "(S, S, 3) float image" if ndim == 3 else "(S, S) float mask"
        raise DatasetError(f"sample key '{key}' must be a numpy {expected}, got {got}")
    return value
