"""The probe's optimiser and learning-rate schedule, value by value (hand formula, not the code under test)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from .conftest import build


def _attach(model, steps: float) -> None:  # noqa: ANN001 - a LinearProbe
    model._trainer = SimpleNamespace(estimated_stepping_batches=steps)


def test_constant_is_plain_adam_over_the_linears_only() -> None:
    model = build(lr=2e-3, betas=[0.4, 0.9])
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert group["lr"] == 2e-3 and group["betas"] == (0.4, 0.9) and group["weight_decay"] == 0
    assert {id(p) for p in group["params"]} == {id(p) for p in model.model.linears.parameters()}


def test_cosine_decays_to_zero_over_the_runs_steps() -> None:
    model = build(lr=3e-3, lr_schedule="cosine")
    _attach(model, 7)
    config = model.configure_optimizers()
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step" and optimizer.param_groups[0]["betas"] == (0.5, 0.999)
    seen = []
    for _ in range(10):  # Lightning: optimiser step, then scheduler step
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [3e-3 * (1 + math.cos(math.pi * min(k, 7) / 7)) / 2 for k in range(10)]
    assert seen == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert seen[0] == 3e-3 and seen[7:] == pytest.approx([0.0] * 3, abs=1e-18)


def test_schedule_option_is_checked() -> None:
    with pytest.raises(ValueError, match=r"^lr_schedule must be 'constant' \(APRIL-GAN\) or 'cosine' .*got 'linear'$"):
        build(lr_schedule="linear")
    model = build(lr_schedule="cosine")
    _attach(model, float("inf"))
    with pytest.raises(ValueError, match=r"needs a run of known length: set --trainer.max_epochs"):
        model.configure_optimizers()
