"""Per-module initialisation seeds: a module's starting weights depend on the run's seed and its own name only.

Built in sequence from one random stream, every module's initial weights would depend on what was
built before it: switching an ablation component on (AFR-CLIP's SP and its CNN, FB-CLIP's deep
prompts) would shift the starting weights of everything built after it, and two ablation rows would
differ in more than what they name. Inside ``module_seed(name)`` torch's CPU generator is seeded
from ``(torch.initial_seed(), name)`` and restored afterwards, so the global stream is neither read
nor advanced. ``torch.initial_seed()`` is the run's seed (``seed_everything``/``manual_seed``).

Public API: ``derived_seed``, ``module_seed``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def derived_seed(name: str, base: int | None = None) -> int:
    """A 63-bit seed from ``(base, name)``; ``base`` defaults to ``torch.initial_seed()``."""
    base = torch.initial_seed() if base is None else base
    digest = hashlib.sha256(f"{base}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@contextmanager
def module_seed(name: str) -> Iterator[int]:
    """Build the modules of this block from their own generator (CPU), seeded by ``(run seed, name)``.

    Yields the derived seed. The global CPU generator is restored on exit.
    """
    seed = derived_seed(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield seed
