"""SCR where its hinge is active and its softmax saturated, and the model passing its own SCR settings."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from src.methods.fbclip.scr import scr_loss
from src.methods.fbclip.torch_model import FBCLIPModel


def _scr_by_hand(tokens: torch.Tensor, text: torch.Tensor, tau: float, margin: float, weight: float,
                 w_entropy: float, w_margin: float) -> float:
    """weight * (w_entropy * mean H(pi) + w_margin * mean max(0, margin - |s1 - s0|)), in Python floats."""
    t = [[float(x) for x in row / row.double().norm()] for row in text]
    total = 0.0
    for b in range(tokens.shape[0]):
        v = tokens[b].double().mean(0)
        v = [float(x) for x in v / v.norm()]
        s = [sum(a * c for a, c in zip(v, t[k], strict=True)) / tau for k in range(2)]
        z = [math.exp(si - max(s)) for si in s]
        pi = [zi / sum(z) for zi in z]
        entropy = -sum(p * math.log(p + 1e-8) for p in pi)
        total += w_entropy * entropy + w_margin * max(0.0, margin - abs(s[1] - s[0]))
    return weight * total / tokens.shape[0]


def _near_tie(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Text rows 0.02 apart in angle: |s1 - s0| is well below 1, so the hinge is active."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(3, 5, 8, generator=g)
    base = torch.randn(8, generator=g)
    text = torch.stack([base, base + 0.02 * torch.randn(8, generator=g)])
    return tokens, text


@pytest.mark.parametrize("settings", [
    {},  # the release's values: tau 0.07, margin 1.0, weight 0.15, w_entropy 1.0, w_margin 0.5
    {"margin": 2.5, "w_margin": 1.5},
    {"tau": 0.2, "weight": 0.4, "w_entropy": 0.3},
])
def test_scr_with_the_hinge_active(settings: dict) -> None:
    tokens, text = _near_tie()
    full = {"tau": 0.07, "margin": 1.0, "weight": 0.15, "w_entropy": 1.0, "w_margin": 0.5, **settings}
    expected = _scr_by_hand(tokens, text, **full)
    assert float(scr_loss(tokens, text, **settings)) == pytest.approx(expected, rel=1e-5)
    no_hinge = _scr_by_hand(tokens, text, **{**full, "w_margin": 0.0})
    assert expected - no_hinge > 0.05 * full["weight"]  # the hinge term is really in play


def test_scr_with_a_saturated_softmax_stays_finite() -> None:
    """|s1 - s0| of about 28: one probability is near 1e-12, below the 1e-8 inside the logarithm."""
    tokens = torch.zeros(1, 2, 3)
    tokens[0, :, 0] = 1.0
    text = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    got = float(scr_loss(tokens, text))
    assert math.isfinite(got)
    # float32 rounds log(1 + 1e-8) to 0: the two agree to the 1e-8 inside the logarithm
    assert got == pytest.approx(_scr_by_hand(tokens, text, 0.07, 1.0, 0.15, 1.0, 0.5), abs=1e-8)


def test_the_model_passes_its_own_scr_settings() -> None:
    tokens, text = _near_tie(1)
    args = {"tau": 0.1, "margin": 3.0, "weight": 0.5, "w_entropy": 0.2, "w_margin": 2.0}
    holder = SimpleNamespace(scr_args=args)
    out = SimpleNamespace(sets=[torch.randn(3, 5, 8), tokens], text=text)
    assert float(FBCLIPModel.scr(holder, out)) == pytest.approx(_scr_by_hand(tokens, text, **args), rel=1e-5)
