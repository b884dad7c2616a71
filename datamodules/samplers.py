"""A shuffling sampler whose order is a pure function of (seed, epoch).

A ``DataLoader(shuffle=True, generator=g)`` draws each epoch's order from ``g``'s running state,
so a run resumed at epoch 1 (fresh loader, fresh generator) would replay epoch 0's order and end
with different weights than the uninterrupted run. Lightning calls ``set_epoch`` on the sampler
at the start of every epoch, which makes the resumed order identical.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """Random permutation of ``range(length)`` seeded by ``seed`` and the current epoch."""

    def __init__(self, length: int, seed: int = 0) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for ``epoch`` (as ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length
