"""The epoch-seeded shuffling sampler that makes resumed runs replay the same data order."""

from datamodules.samplers import EpochShuffleSampler


def test_order_depends_only_on_seed_and_epoch() -> None:
    a, b = EpochShuffleSampler(50, seed=3), EpochShuffleSampler(50, seed=3)
    first = list(a)
    assert sorted(first) == list(range(50)) and len(a) == 50
    a.set_epoch(1)
    second = list(a)
    assert second != first
    b.set_epoch(1)  # a fresh sampler (a resumed run) at epoch 1 gives epoch 1's order
    assert list(b) == second
    assert list(EpochShuffleSampler(50, seed=4)) != first
