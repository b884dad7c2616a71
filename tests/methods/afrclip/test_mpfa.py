import pytest
import torch

from src.methods.afrclip.mpfa import MPFA


def tokens(b=2, gh=4, gw=5, d=3, seed=0):
    return torch.randn(b, 1 + gh * gw, d, generator=torch.Generator().manual_seed(seed))


def test_kernel_one_is_identity():
    x = tokens()
    assert torch.equal(MPFA(1, (4, 5))(x), x)


def test_constant_grid_is_unchanged_with_m3_and_cls_untouched():
    x = torch.full((2, 1 + 20, 3), 2.5)
    x[:, 0] = torch.tensor([7.0, -1.0, 0.5])
    y = MPFA(3, (4, 5))(x)
    # count_include_pad=False: border cells average only real neighbours, so no darkening.
    assert torch.allclose(y, x)


def test_m3_matches_hand_computed_neighbourhood_means():
    gh, gw = 4, 5
    x = tokens(gh=gh, gw=gw)
    y = MPFA(3, (gh, gw))(x)
    assert torch.equal(y[:, 0], x[:, 0])
    grid = x[:, 1:].reshape(2, gh, gw, 3)
    out = y[:, 1:].reshape(2, gh, gw, 3)
    for r, c in [(0, 0), (0, 2), (1, 1), (3, 4), (2, 0)]:
        rows = slice(max(r - 1, 0), min(r + 2, gh))
        cols = slice(max(c - 1, 0), min(c + 2, gw))
        expected = grid[:, rows, cols].reshape(2, -1, 3).mean(1)
        assert torch.allclose(out[:, r, c], expected, atol=1e-6)


def test_m5_differs_from_m3_and_keeps_shape():
    x = tokens(gh=6, gw=6)
    y3, y5 = MPFA(3, (6, 6))(x), MPFA(5, (6, 6))(x)
    assert y5.shape == x.shape and not torch.allclose(y3, y5)


@pytest.mark.parametrize("bad", [0, 2, -1])
def test_rejects_even_or_nonpositive_kernels(bad):
    with pytest.raises(ValueError, match="mpfa_kernel"):
        MPFA(bad, (4, 4))


def test_rejects_wrong_token_count():
    with pytest.raises(ValueError, match="1 \\+ 4x4"):
        MPFA(3, (4, 4))(torch.randn(1, 10, 3))
