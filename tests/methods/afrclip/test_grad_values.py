"""AFR-CLIP's training gradients pinned against the float64 re-derivation.

The forward and loss tests pin values; a ``detach`` slipped into the forward (e.g. on the stateless
text feature before CMFR) leaves every value as it is and only cuts a gradient path, so the trained
weights drift from the paper's. Here the gradient of the suite's training loss with respect to every
trainable tensor is compared with the gradient of the float64 reference loss (``reference.py``,
which never calls the method's modules), taken by autograd through the reference with float64
copies of the trainable tensors as leaves.
"""

from __future__ import annotations

import pytest
import torch

from tests.batches import make_batch

from . import reference as ref
from .conftest import build_valued, seeded_resnet18
from .test_forward_values import CATEGORIES, CONFIGS, NOUNS, images

CFG = CONFIGS["three-stages"]  # SP (P_v and P_l, append and refresh), MPFA m = 3, shared CMFR


def batch_parts():
    mask = torch.zeros(2, 1, 64, 64)
    mask[1, :, 20:40, 8:30] = 1
    return images(), mask, torch.tensor([0, 1])


def reference_gradients(model, monkeypatch) -> dict[str, torch.Tensor]:
    """d(reference loss)/d(each trainable tensor), in float64.

    ``reference.d`` takes detached float64 copies of the weights; here it hands out a float64 leaf
    for each trainable tensor instead and keeps the reference's own float64 intermediates attached.
    """
    trainable = {name: p for name, p in model.model.named_parameters() if p.requires_grad}
    leaves = {id(p): p.detach().double().clone().requires_grad_(True) for p in trainable.values()}
    detached = ref.d

    def attached(t: torch.Tensor) -> torch.Tensor:
        if id(t) in leaves:
            return leaves[id(t)]
        return t if t.dtype == torch.float64 and t.requires_grad else detached(t)

    monkeypatch.setattr(ref, "d", attached)
    x, mask, label = batch_parts()
    out = ref.forward(model, x, CATEGORIES, NOUNS, CFG, cnn=seeded_resnet18().double())
    terms = ref.loss_terms(out["stage_logits"], model.model.backbone.grid_size, mask, label)
    ref.total_loss(terms).backward()
    return {name: leaves[id(p)].grad for name, p in trainable.items()}


@pytest.fixture(scope="module")
def model(cnn_file):
    return build_valued(CFG, cnn_file)


def test_every_trainable_gradient_equals_the_reference(model, monkeypatch):
    model.train()
    x, mask, label = batch_parts()
    terms = model.training_losses(make_batch(x, category=CATEGORIES, mask=mask, label=label))
    model.zero_grad()
    sum(terms.values()).backward()
    expected = reference_gradients(model, monkeypatch)
    for name, grad in expected.items():
        ours = dict(model.model.named_parameters())[name].grad
        assert ours is not None, f"{name} gets no gradient"
        assert grad.abs().sum() > 0, f"{name}: the reference loss does not depend on it"
        error = float((ours.double() - grad).norm() / grad.norm())
        assert error < 1e-4, f"{name}: relative gradient error {error:.2e}"
