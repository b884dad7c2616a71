"""The training-diagnosis callback's pieces, pinned by value."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from src.logging.trace import auroc, grad_norms, group_of


def test_group_is_the_first_name_below_the_torch_model():
    assert group_of("model.stage_adapters.linears.0.weight") == "stage_adapters"
    assert group_of("model.cmfr.0.conv1.weight") == "cmfr"
    assert group_of("model.bias") == "model"
    assert group_of("postprocess.weight") == "postprocess"


def test_grad_norms_are_l2_norms_per_group_of_trainables_only():
    module = nn.Module()
    module.model = nn.Module()
    module.model.a = nn.Linear(2, 2)
    module.model.b = nn.Linear(2, 1)
    module.model.frozen = nn.Linear(2, 1)
    module.model.frozen.requires_grad_(False)
    module.model.a.weight.grad = torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    module.model.a.bias.grad = torch.tensor([0.0, 4.0])
    module.model.b.weight.grad = torch.tensor([[1.0, 1.0]])
    module.model.frozen.weight.grad = torch.ones(1, 2)  # never counted: not trainable
    assert grad_norms(module) == {"a": 5.0, "b": 2 ** 0.5}


def test_auroc_counts_ties_half_and_refuses_one_class():
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auroc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5
    assert auroc(np.array([0.2, 0.3]), np.array([1, 1])) is None
