"""AFR-CLIP's training loss pinned term by term against the float64 re-derivation.

Loss (the paper states none; the README's resolution): per stage s, focal (gamma 2, smoothing 1e-5)
on the two-channel map + dice(abnormal channel, G) + dice(normal channel, 1 - G), summed over
stages; plus the image cross-entropy on each stage's CLS logits, averaged over stages and over
the batch. Every weight is 1, every sample (normal or anomalous) enters every term.
"""

from __future__ import annotations

import pytest
import torch

from src.methods.afrclip import losses as afr_loss_module
from src.methods.afrclip.losses import afr_losses
from tests.batches import make_batch

from . import reference as ref
from .conftest import build_valued, seeded_resnet18
from .test_forward_values import CATEGORIES, CONFIGS, NOUNS, images

GRID = (4, 4)
STAGES = 3


def inputs(seed: int = 3):
    """Stage logits (S x (B, 1 + 16, 2)), a (B, 1, 16, 16) mask and labels; B = 4, two normal."""
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(4, 17, 2, generator=g) * 2 for _ in range(STAGES)]
    mask = torch.zeros(4, 1, 16, 16)
    mask[1, :, 2:9, 5:12] = 1
    mask[3, :, 10:16, 0:6] = 1
    return logits, mask, torch.tensor([0, 1, 0, 1])


def total(terms: dict) -> torch.Tensor:
    """What the training step minimises: the plain sum of the returned terms."""
    return torch.stack([t.detach().double() for t in terms.values()]).sum()


def test_every_term_equals_the_reference():
    logits, mask, label = inputs()
    ours = afr_losses(logits, GRID, mask, label)
    expected = ref.loss_terms(logits, GRID, mask, label)
    assert set(ours) == {"image_ce", "focal", "dice_abnormal", "dice_normal"}
    assert float(ours["image_ce"]) == pytest.approx(float(torch.stack(expected["image_ce"]).mean()), rel=1e-5)
    for name in ("focal", "dice_abnormal", "dice_normal"):
        assert float(ours[name]) == pytest.approx(float(sum(expected[name])), rel=1e-5), name
    assert float(total(ours)) == pytest.approx(float(ref.total_loss(expected)), rel=1e-5)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 3.5])
def test_focal_exponent(gamma):
    logits, mask, label = inputs()
    ours = afr_losses(logits, GRID, mask, label, gamma=gamma)["focal"]
    assert float(ours) == pytest.approx(float(sum(ref.loss_terms(logits, GRID, mask, label, gamma)["focal"])),
                                        rel=1e-5)


@pytest.mark.parametrize("stage", [0, STAGES - 1])
def test_changing_one_stages_cls_logits_moves_the_total_by_the_ce_change_over_s(stage):
    """The image CE has weight 1 and is averaged over the stages; no other term sees the CLS token."""
    logits, mask, label = inputs()
    moved = [lg.clone() for lg in logits]
    moved[stage][:, 0] += torch.tensor([[1.5, -2.0], [0.3, 0.7], [-1.0, 2.5], [2.0, 0.0]])
    before, after = ref.loss_terms(logits, GRID, mask, label), ref.loss_terms(moved, GRID, mask, label)
    change = float(after["image_ce"][stage] - before["image_ce"][stage])
    assert abs(change) > 0.1
    delta = total(afr_losses(moved, GRID, mask, label)) - total(afr_losses(logits, GRID, mask, label))
    assert float(delta) == pytest.approx(change / STAGES, rel=1e-4)


def test_flipping_a_label_moves_only_the_image_ce_by_its_batch_mean_change():
    logits, mask, label = inputs()
    flipped = label.clone()
    flipped[0] = 1
    ours, moved = afr_losses(logits, GRID, mask, label), afr_losses(logits, GRID, mask, flipped)
    expected = sum(
        float(torch.log_softmax(lg[0, 0].double(), -1)[0] - torch.log_softmax(lg[0, 0].double(), -1)[1])
        for lg in logits
    ) / STAGES / len(label)  # one of B samples changes; CE is a batch mean, then a stage mean
    assert float(moved["image_ce"] - ours["image_ce"]) == pytest.approx(expected, rel=1e-4)
    for name in ("focal", "dice_abnormal", "dice_normal"):
        assert torch.equal(moved[name], ours[name]), name


@pytest.mark.parametrize(("function", "calls_per_stage"), [("softmax_focal_loss", 1), ("dice_loss", 2)])
def test_pixel_terms_have_weight_one_per_stage(monkeypatch, function, calls_per_stage):
    """Adding delta inside focal (or dice) moves the total by exactly S x calls x delta."""
    logits, mask, label = inputs()
    base = total(afr_losses(logits, GRID, mask, label))
    original = getattr(afr_loss_module, function)
    delta = 0.125
    monkeypatch.setattr(afr_loss_module, function, lambda *a, **k: original(*a, **k) + delta)
    moved = total(afr_losses(logits, GRID, mask, label))
    assert float(moved - base) == pytest.approx(STAGES * calls_per_stage * delta, rel=1e-5)


def test_normal_images_enter_the_pixel_terms():
    """Changing only a normal image's patch logits changes focal and both dice terms."""
    logits, mask, label = inputs()
    moved = [lg.clone() for lg in logits]
    moved[1][0, 1:, 1] += 1.0  # image 0 is normal (label 0, empty mask): more abnormal everywhere
    a, b = afr_losses(logits, GRID, mask, label), afr_losses(moved, GRID, mask, label)
    expected = ref.loss_terms(moved, GRID, mask, label)
    for name in ("focal", "dice_abnormal", "dice_normal"):
        assert not torch.isclose(a[name], b[name]), name
        assert float(b[name]) == pytest.approx(float(sum(expected[name])), rel=1e-5), name


def test_training_step_loss_equals_the_reference_on_the_full_model(cnn_file):
    """The model's training losses on a batch = the reference loss of the reference stage logits."""
    cfg = CONFIGS["three-stages"]
    model = build_valued(cfg, cnn_file)
    x = images()
    mask = torch.zeros(2, 1, 64, 64)
    mask[1, :, 20:40, 8:30] = 1
    label = torch.tensor([0, 1])
    model.train()
    terms = model.training_losses(make_batch(x, category=CATEGORIES, mask=mask, label=label))
    expected = ref.forward(model, x, CATEGORIES, NOUNS, cfg, cnn=seeded_resnet18().double())
    grid = model.model.backbone.grid_size
    reference = ref.loss_terms(expected["stage_logits"], grid, mask, label)
    assert float(total(terms)) == pytest.approx(float(ref.total_loss(reference)), rel=1e-5)
    expected_ce = float(torch.stack(reference["image_ce"]).mean())
    assert float(terms["image_ce"].detach()) == pytest.approx(expected_ce, rel=1e-5)
