"""Shared fixtures: a tiny random-init AFR-CLIP (tiny-vit, 32/64 px, resnet18 SP source)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

from src.contracts import Batch
from src.methods.afrclip import AFRCLIP
from tests.batches import batch32 as tiny_batch32

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
def batch32() -> Batch:
    return tiny_batch32()


def seeded_resnet18() -> torchvision.models.ResNet:
    """A torchvision resnet18 with seeded weights and batch-norm statistics far from (0, 1)."""
    torch.manual_seed(123)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("afr-cnn") / "resnet18.pth"
    torch.save(seeded_resnet18().state_dict(), path)
    return path


def build_valued(cfg: dict, cnn_path, **extra) -> AFRCLIP:
    """The value-test model: tiny-vit at its native 64 px, resnet18 SP source from ``cnn_path``."""
    args = {**cfg, **extra}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AFRCLIP(backbone="tiny-vit", pretrained="none", image_size=64, sp_source="resnet18",
                       sp_cnn_pretrained=str(cnn_path), **args).eval()
