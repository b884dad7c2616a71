"""A process group made of threads: the torch.distributed calls the metrics make, in one process.

The ddp tests spawn real gloo processes, which mutation runs leave out (a re-executed interpreter
would import the mutants' ``src/logging`` as the standard library's ``logging``). So that the
multi-rank branches are still judged against mutants, each rank here is a thread, and the
collectives exchange objects and tensors through shared slots behind a barrier. Patch it in with
``monkeypatch.setattr(src.metrics.distributed, "dist", ThreadGroup(world))``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist


class ThreadGroup:
    """``world`` ranks, one per thread started by :meth:`run`."""

    ReduceOp = dist.ReduceOp

    def __init__(self, world: int, backend: str = "gloo") -> None:
        self.world, self.backend = world, backend
        self._barrier = threading.Barrier(world, timeout=120)  # a rank that skips a collective fails the test
        self._slots: list[Any] = [None] * world
        self._local = threading.local()
        self._local.rank = 0  # the calling thread is rank 0 unless run() says otherwise

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return True

    def get_world_size(self) -> int:
        return self.world

    def get_rank(self) -> int:
        return self._local.rank

    def get_backend(self) -> str:
        return self.backend

    def _exchange(self, value: Any) -> list[Any]:
        self._slots[self.get_rank()] = value
        self._barrier.wait()
        everything = list(self._slots)
        self._barrier.wait()  # no rank overwrites a slot before every rank has read them all
        return everything

    def all_gather_object(self, out: list[Any], obj: Any) -> None:
        if len(out) != self.world:  # as torch: the output list is sized by the caller
            raise ValueError(f"output list has {len(out)} entries for {self.world} ranks")
        # torch pickles the objects: no rank ever holds a reference into another's data
        out[:] = [copy.deepcopy(o) for o in self._exchange(obj)]

    def all_reduce(self, tensor: torch.Tensor, op: Any = dist.ReduceOp.SUM) -> None:
        if op != dist.ReduceOp.SUM:
            raise ValueError(f"only SUM is modelled, got {op!r}")
        parts = self._exchange(tensor.clone())
        tensor.copy_(torch.stack(parts).sum(0))

    def run(self, work: Callable[[int], Any]) -> list[Any]:
        """``work(rank)`` on every rank at once; the results in rank order (a rank's error is re-raised)."""
        results: list[Any] = [None] * self.world
        errors: list[BaseException] = []

        def target(rank: int) -> None:
            self._local.rank = rank
            try:
                results[rank] = work(rank)
            except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(error)
                self._barrier.abort()  # release the other ranks instead of letting them wait

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results
