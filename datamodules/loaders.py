"""What every loader of the DataModule shares: the :class:`~src.contracts.Batch` collate, worker
seeding, seeded shuffling, and loading the configured sample hook.

Public API: ``collate_batch``, ``make_loader``, ``load_hook``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from datamodules.base import DatasetError, SampleHook
from datamodules.samplers import EpochShuffleSampler
from src.contracts import Batch


def collate_batch(items: list[dict[str, Any]]) -> Batch:
    """Stack dataset items into a :class:`Batch` (tensors stacked, ints/bools as tensors, strings as lists).

    Raises :class:`DatasetError` for an item key that is not a batch field (a sample hook's typo).
    """
    unknown = sorted(set().union(*items) - set(Batch.field_names()))
    if unknown:
        raise DatasetError(
            f"dataset items carry unknown batch field(s) {unknown}; the batch fields are "
            f"{list(Batch.field_names())} (a sample hook may only return these)"
        )
    return Batch(**default_collate(items))


def _reseed_worker(worker_id: int) -> None:
    """Give each DataLoader worker its own augmentation stream (torch seeds workers per epoch)."""
    info = get_worker_info()
    preprocessor = getattr(info.dataset, "preprocessor", None) if info is not None else None
    if preprocessor is not None:
        preprocessor.reseed(torch.initial_seed() % 2**32)


def make_loader(dataset: Dataset, batch_size: int, seed: int, num_workers: int, shuffle: bool = False) -> DataLoader:
    """A loader yielding :class:`Batch`; shuffled by (seed, epoch) so that a resumed run replays the order."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffleSampler(len(dataset), seed) if shuffle else None,
        num_workers=num_workers,
        collate_fn=collate_batch,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_reseed_worker,
        persistent_workers=False,
    )


def load_hook(path: str, args: dict | None) -> Callable[..., dict[str, Any]]:
    """Instantiate the sample-hook class at dotted ``path`` as ``cls(**args)``; only ``SampleHook`` subclasses."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise DatasetError(f"sample_hook '{path}' must be a dotted path 'package.module.ClassName'")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise DatasetError(f"sample_hook '{path}' cannot be imported: {error}") from None
    if not (isinstance(cls, type) and issubclass(cls, SampleHook)):
        raise DatasetError(
            f"sample_hook '{path}' is not a subclass of datamodules.SampleHook; only sample-hook classes "
            "(e.g. src.methods.vtfusion.das.DASHook) may be configured"
        )
    try:
        return cls(**(args or {}))
    except TypeError as error:
        raise DatasetError(f"sample_hook '{path}' rejected sample_hook_args {args}: {error}") from None
