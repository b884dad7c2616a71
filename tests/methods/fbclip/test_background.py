"""Background bank, prototype and subtraction."""

from __future__ import annotations

import pytest
import torch

from src.methods.fbclip.background import (
    background_bank,
    background_prototype,
    bank_rows,
    subtract_background,
)


def test_bank_size_and_cls_first():
    torch.manual_seed(0)
    L = 16
    sets = [torch.randn(2, 1 + L, 8) for _ in range(15)]
    bank = background_bank(sets)
    rows = (L + 1) // 2
    assert bank.shape == (2, 15 * rows, 8)
    for k in range(15):
        assert torch.equal(bank[:, k * rows], sets[k][:, 0])
        assert torch.equal(bank[:, k * rows: (k + 1) * rows], sets[k][:, :rows])
    assert bank_rows(1370) == 685
    assert background_bank(sets, "full").shape == (2, 15 * (1 + L), 8)


def test_score_candidates_take_lowest_scores():
    tokens = torch.arange(5.0).view(1, 5, 1).expand(1, 5, 2)  # CLS + 4 patches
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.2]])
    bank = background_bank([tokens], "half", [scores])  # 2 rows: CLS + lowest patch
    assert torch.equal(bank[0, :, 0], torch.tensor([0.0, 2.0]))


def test_prototype_and_subtraction_by_hand():
    bank = torch.tensor([[[1.0, 0.0], [3.0, -2.0]]])
    b = background_prototype(bank)
    assert torch.allclose(b, torch.tensor([[0.5 * 2 + 0.5 * 3, 0.5 * -1 + 0.5 * 0]]))
    z = torch.tensor([[[1.0, 1.0], [2.5, -0.5]]])
    out = subtract_background(z, b)
    for i in range(2):
        s = torch.dot(z[0, i], b[0]) / (z[0, i].norm() * b[0].norm())
        assert torch.allclose(out[0, i], 0.5 * z[0, i] + 0.5 * (1 - s) * (z[0, i] - b[0]), atol=1e-6)
    # A token equal to the prototype keeps half of itself.
    assert torch.allclose(subtract_background(b[:, None], b), 0.5 * b[:, None])


def test_scored_bank_takes_cls_and_the_lowest_scores_ties_by_index() -> None:
    from src.methods.fbclip.background import background_bank

    tokens = [torch.arange(2 * 9 * 3, dtype=torch.float32).reshape(2, 9, 3) + 100 * s for s in range(2)]
    scores = [torch.tensor([[0.5, 0.1, 0.1, 0.9, 0.1, 0.3, 0.1, 0.7], [0.2, 0.2, 0.2, 0.2, 0.0, 0.2, 0.2, 0.2]]),
              torch.tensor([[0.3, 0.2, 0.1, 0.0, 0.4, 0.5, 0.6, 0.7], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]])]
    bank = background_bank(tokens, "half", scores)
    rows = 9 // 2  # CLS and the 3 lowest-scoring of 8 patches, per set
    assert bank.shape == (2, 2 * rows, 3)
    for b in range(2):
        expected = []
        for s in range(2):
            patches = sorted(range(8), key=lambda j, s=s, b=b: (float(scores[s][b, j]), j))[: rows - 1]
            expected += [tokens[s][b, 0]] + [tokens[s][b, 1 + j] for j in patches]
        assert torch.equal(bank[b], torch.stack(expected)), b
    with pytest.raises(ValueError, match=r"^bg_bank='quarter' is not known; valid: \['half', 'full'\]$"):
        background_bank(tokens, "quarter", scores)
