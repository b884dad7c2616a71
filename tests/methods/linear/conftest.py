"""Shared fixtures: a tiny random-init linear probe (tiny-vit, 32 px -> 4 x 4 patches)."""

from __future__ import annotations

import warnings

import pytest
import torch

from src.contracts import Batch
from src.methods.linear import LinearProbe
from tests.batches import batch32 as tiny_batch32

TINY = {"backbone": "tiny-vit", "pretrained": "none", "image_size": 32, "layers": [2, 3, 4]}


def build(**overrides) -> LinearProbe:
    """A tiny linear probe; ``overrides`` replace the tiny defaults."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LinearProbe(**{**TINY, **overrides})


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: thread hand-offs cost more than the work on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def batch32() -> Batch:
    return tiny_batch32()
