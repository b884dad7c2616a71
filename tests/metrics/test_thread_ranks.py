"""The multi-rank branches of the metrics, with threads as ranks (the ddp test does it with processes).

Unlike ``test_distributed.py`` these run in one interpreter, so mutation runs judge them too.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from src.metrics import distributed
from src.metrics.accumulator import AnomalyMetrics
from src.metrics.distributed import (
    _collective_device,
    all_gather_object,
    all_reduce_sum,
    is_distributed,
    rank_and_world,
)
from src.metrics.io import metrics_json
from tests.metrics.scenarios import make_category
from tests.metrics.thread_group import ThreadGroup


@pytest.fixture
def group(monkeypatch: pytest.MonkeyPatch):
    """``group(world, backend)`` patches a thread group of that size into src.metrics.distributed."""

    def make(world: int, backend: str = "gloo") -> ThreadGroup:
        made = ThreadGroup(world, backend)
        monkeypatch.setattr(distributed, "dist", made)
        return made

    return make


def test_outside_a_group_everything_is_local() -> None:
    a = np.array([1.0, 2.0])
    assert not is_distributed() and rank_and_world() == (0, 1)
    assert all_gather_object({"x": 1}) == [{"x": 1}] and all_reduce_sum(a) is a


def test_a_group_of_one_is_not_distributed(group) -> None:
    group(1)
    a = np.array([1, 2])
    assert not is_distributed() and rank_and_world() == (0, 1)
    assert all_gather_object("x") == ["x"] and all_reduce_sum(a) is a


def test_collectives_on_two_ranks(group) -> None:
    g = group(2)

    def work(rank: int) -> tuple:
        # integer counts: the sum comes back as float64 (exact up to 2**53)
        summed = all_reduce_sum(np.array([[1, 2], [3, 4]], dtype=np.int64) * (rank + 1))
        return is_distributed(), rank_and_world(), all_gather_object(("rank", rank)), summed

    for rank, (flag, where, gathered, summed) in enumerate(g.run(work)):
        assert flag and where == (rank, 2) and gathered == [("rank", 0), ("rank", 1)]
        assert summed.dtype == np.float64
        np.testing.assert_array_equal(summed, [[3.0, 6.0], [9.0, 12.0]])


def test_collective_device_follows_the_backend(group, monkeypatch: pytest.MonkeyPatch) -> None:
    group(2, "gloo")
    assert _collective_device() == torch.device("cpu")
    group(2, "nccl")  # NCCL reduces CUDA tensors only: the current CUDA device
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert _collective_device() == torch.device("cuda", 1)


def _dataset():
    parts = [make_category("many_small", seed=21, n_images=7, size=12),
             make_category("ties", seed=22, n_images=6, size=12)]
    names = np.array(["beta"] * 7 + ["alpha"] * 6)
    maps, masks, scores, labels, defects = (np.concatenate(x) for x in zip(*parts))
    return maps, masks, scores, labels, defects, names


def _evaluate(positions: list[int], variant: str) -> str:
    maps, masks, scores, labels, defects, names = _dataset()
    acc = AnomalyMetrics(aupro_variant=variant, num_bins=2**12)
    for s in range(0, len(positions), 3):
        i = np.asarray(positions[s : s + 3])
        acc.update(maps[i], scores[i], masks[i], labels[i], list(names[i]), list(defects[i]), torch.from_numpy(i))
    result = acc.compute()
    result["meta"].pop("wall_s")
    return metrics_json(result)


@pytest.mark.parametrize("variant", ["exact", "anomalyclip"])
def test_two_ranks_with_padding_equal_one(group, variant: str) -> None:
    n = len(_dataset()[2])
    single = _evaluate(list(range(n)), variant)  # before the group: one process
    g = group(2)
    # DistributedSampler(shuffle=False): pad with the first samples to a multiple of the world size,
    # rank r takes every other position from r. Rank 1 ends with a repeat of sample 0.
    padded = list(range(n)) + list(range(-n % 2))
    assert padded[1::2][-1] == 0
    for text in g.run(lambda rank: _evaluate(padded[rank::2], variant)):
        assert json.loads(text) == json.loads(single)
    assert json.loads(single)["meta"]["n_images"] == n


def test_two_ranks_need_an_index(group) -> None:
    g = group(2)
    acc = AnomalyMetrics()

    def work(rank: int) -> None:
        if rank == 0:
            acc.update(np.zeros((1, 2, 2)), [0.0], np.zeros((1, 2, 2)), [0], ["c"], ["good"], None)

    with pytest.raises(ValueError, match="^index is required under torch.distributed to drop padded duplicates$"):
        g.run(work)
    acc.close()
