"""Dataset names -> readers, and a category helper for code outside the DataModule.

``DATASETS`` maps each name accepted by ``AnomalyDataModule(dataset=...)`` to a reader factory
taking the shared reader options as keyword arguments (each factory ignores what it does not use).

Public API: ``DATASETS``, ``make_reader``, ``dataset_categories``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from datamodules.base import DatasetError
from datamodules.builtin import BuiltinReader
from datamodules.folder import DEFAULT_IMAGE_EXTENSIONS, DatasetReader, FolderReader
from datamodules.mvtec import MVTecReader
from datamodules.visa import VisaReader


def _folder(
    image_extensions: Sequence[str] | None = None,
    mask_suffix: str = "_mask",
    mask_extensions: Sequence[str] | None = None,
    **_: object,
) -> FolderReader:
    return FolderReader(image_extensions or DEFAULT_IMAGE_EXTENSIONS, mask_suffix, mask_extensions)


def _builtin(name: str) -> Callable[..., DatasetReader]:
    def make(cache_dir: str | os.PathLike | None = None, **_: object) -> DatasetReader:
        return BuiltinReader(name, cache_dir=cache_dir)

    return make


DATASETS: dict[str, Callable[..., DatasetReader]] = {
    "builtin": _builtin("builtin"),
    "builtin-A": _builtin("builtin-A"),
    "builtin-B": _builtin("builtin-B"),
    "mvtec": lambda check_counts=True, **_: MVTecReader(check_counts=check_counts),
    "visa": lambda check_counts=True, **_: VisaReader(check_counts=check_counts),
    "folder": _folder,
}


def make_reader(name: str, **options: object) -> DatasetReader:
    """Reader for a dataset name; options: check_counts, image_extensions, mask_suffix,
    mask_extensions, cache_dir."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset '{name}'; valid: {sorted(DATASETS)}")
    return DATASETS[name](**options)


def dataset_categories(name: str, root: str | os.PathLike | None = None, **options: object) -> list[str]:
    """Categories of a dataset (e.g. for per-category k-shot loops); ``folder`` lists sub-folders of root."""
    return make_reader(name, **options).categories(root)
