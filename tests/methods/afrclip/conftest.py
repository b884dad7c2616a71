"""Shared fixtures: a tiny random-init AFR-CLIP (tiny-vit, 32/64 px, resnet18 SP source)."""

from __future__ import annotations

import warnings

import pytest
import torch

from src.methods.afrclip import AFRCLIP

TINY = {"backbone": "tiny-vit", "pretrained": "none", "image_size": 32, "layers": [2, 3, 4],
        "sp_source": "resnet18", "sp_cnn_pretrained": "none"}


def build(**overrides) -> AFRCLIP:
    """A tiny AFR-CLIP; ``overrides`` replace the tiny defaults."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AFRCLIP(**{**TINY, **overrides})


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: thread hand-offs cost more than the work on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_model():
    return build


@pytest.fixture
def batch32() -> dict:
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(2, 1, 32, 32)
    mask[1, :, 8:16, 16:24] = 1
    return {"image": torch.randn(2, 3, 32, 32, generator=g), "mask": mask, "label": torch.tensor([0, 1]),
            "category": ["pcb1", "screw"]}
