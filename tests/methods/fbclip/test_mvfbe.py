"""MVFBE against hand computations of the released formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from src.methods.fbclip.mvfbe import (
    check_views,
    foreground_score,
    indicators,
    minmax,
    semantic_view,
    soft_mask,
    spatial_view,
)

from . import reference


def test_indicators_by_hand():
    cls = torch.tensor([[1.0, 0.0]])
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    prev = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [3.0, 0.0]])
    tokens = torch.cat([cls, x]).unsqueeze(0)
    S, D, I, T = indicators(tokens, prev.unsqueeze(0))[:, 0]
    # Saliency: 3-tap mean with a zero pad counted in the average.
    means = [(0 + x[0] + x[1]) / 3, (x[0] + x[1] + x[2]) / 3, (x[1] + x[2] + 0) / 3]
    assert torch.allclose(S, torch.stack([(x[i] - means[i]).norm() for i in range(3)]))
    assert torch.allclose(D, (x - x.mean(0)).norm(dim=-1))
    assert torch.allclose(I, torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(T, (x - prev[1:]).norm(dim=-1))
    assert torch.equal(indicators(tokens)[3], torch.zeros(1, 3))


def test_score_smoothing_is_torch_reflect_and_first_layer_at_most_point_nine():
    torch.manual_seed(0)
    tokens = torch.randn(2, 1 + 16, 8)
    raw = foreground_score(tokens, None, smooth=False)
    assert raw.max() <= 0.9 + 1e-6  # the temporal term is 0 on the first layer
    parts = indicators(tokens)
    by_hand = sum(w * minmax(p) for w, p in zip((0.3, 0.3, 0.3, 0.1), parts))
    assert torch.allclose(raw, by_hand)
    smooth = foreground_score(tokens, None)
    a = raw[0]
    # torch 'reflect': index -1 -> 1, -2 -> 2 (edge sample not repeated)
    assert torch.isclose(smooth[0, 0], (a[2] + a[1] + a[0] + a[1] + a[2]) / 5)
    assert torch.isclose(smooth[0, 5], a[3:8].mean())


def test_soft_mask_takes_only_two_values():
    torch.manual_seed(1)
    p = soft_mask(foreground_score(torch.randn(3, 1 + 36, 8), torch.randn(3, 1 + 36, 8)))
    assert set(p.unique().tolist()) <= {0.5, 1.0}
    assert torch.equal(soft_mask(torch.tensor([[0.5, 0.51]])), torch.tensor([[0.5, 1.0]]))
    assert torch.equal(soft_mask(torch.tensor([[0.1, 0.9]]), (0.2, 0.7)), torch.tensor([[0.2, 0.7]]))


def test_sem_by_hand_two_tokens():
    cls = torch.tensor([1.0, 0.0])
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([1.0, 0.5])
    tokens = torch.cat([cls[None], x]).unsqueeze(0)
    out = semantic_view(tokens, p[None])[0]
    c = torch.tensor([1.0, 0.0])
    y = []
    for i in range(2):
        fl = torch.tensor([(1 - c[i]) * p[i] * p[j] for j in range(2)])
        gl = torch.tensor([c[i] * (1 - p[i]) * (1 - p[j]) for j in range(2)])
        f = (torch.softmax(fl, 0)[:, None] * x).sum(0)
        g = (torch.softmax(gl, 0)[:, None] * x).sum(0)
        y.append(0.6 * (p[i] * f + (1 - p[i]) * g) + 0.4 * x[i])
    assert torch.allclose(out[0], cls)
    assert torch.allclose(out[1:], torch.stack(y), atol=1e-6)


def test_sem_fused_equals_dense():
    torch.manual_seed(2)
    tokens = torch.randn(2, 1 + 25, 16)
    p = soft_mask(foreground_score(tokens))
    dense = reference.sem_view(tokens.double(), p.double())  # explicit (B, L, L) softmax matrices, alpha 0.6
    assert torch.allclose(semantic_view(tokens, p).double(), dense, atol=1e-5)


def _spa_by_hand(tokens, p, gh, gw):
    """Loop form of the SPA view: zero-padded 5x5 windows, pads have x = 0 and p = 0."""
    cls, x = tokens[0, 0], tokens[0, 1:]
    out = [cls]
    for r in range(gh):
        for c in range(gw):
            xs, ps = [], []
            for dr in range(-2, 3):
                for dc in range(-2, 3):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < gh and 0 <= cc < gw:
                        xs.append(x[rr * gw + cc])
                        ps.append(p[0, rr * gw + cc])
                    else:
                        xs.append(torch.zeros_like(cls))
                        ps.append(torch.tensor(0.0))
            xs, ps = torch.stack(xs), torch.stack(ps)[:, None]
            b, a = (1 - ps) * xs, ps * xs

            def cos(u):
                return 0.0 if float(u.norm()) == 0 else float(u @ cls / (u.norm() * cls.norm()))

            sigma = torch.tensor([cos(u) * float(u.norm()) for u in b])
            mean_a = a.mean(0)
            rho = torch.tensor([(1 - cos(u)) * float((u - mean_a).norm()) for u in a])
            bg = (torch.softmax(sigma, 0)[:, None] * b).sum(0) / max(float((1 - ps).sum()), 1e-8)
            fg = (torch.softmax(rho, 0)[:, None] * a).sum(0) / max(float(ps.sum()), 1e-8)
            out.append(fg + bg)
    return torch.stack(out)


def test_spa_on_3x3_grid_with_known_mask():
    torch.manual_seed(3)
    tokens = torch.randn(1, 1 + 9, 4, dtype=torch.float64)
    p = torch.tensor([[1.0, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 1.0]], dtype=torch.float64)
    out = spatial_view(tokens, p, (3, 3))[0]
    assert torch.allclose(out, _spa_by_hand(tokens, p, 3, 3), atol=1e-10)
    # Centre of a 3x3 grid: 9 real slots + 16 pads; the fg part is divided by sum(p) = 6.
    assert math.isclose(float(p.sum()), 6.0)


def test_spa_window_without_uncertain_tokens_has_zero_bg_part():
    tokens = torch.randn(1, 1 + 9, 4, dtype=torch.float64)
    p = torch.ones(1, 9, dtype=torch.float64)
    out = spatial_view(tokens, p, (3, 3))[0, 1:]
    assert torch.allclose(out, _spa_by_hand(tokens, p, 3, 3)[1:], atol=1e-10)


def test_views_validation():
    assert check_views(["spa", "id"]) == ("id", "spa")
    with pytest.raises(ValueError, match="views"):
        check_views(["id", "foo"])
    with pytest.raises(ValueError, match="views"):
        check_views([])


def test_cos_zero_vector_convention():
    # The spec: cos of a zero vector (a pad) with CLS is 0 (F.normalize keeps it at 0).
    assert float((F.normalize(torch.zeros(3), dim=0) * torch.ones(3)).sum()) == 0.0


def test_foreground_score_keeps_the_input_precision() -> None:
    """A float64 run (as the references use) must smooth in float64, not fail on a float32 kernel."""
    from src.methods.fbclip.mvfbe import foreground_score

    g = torch.Generator().manual_seed(4)
    tokens, prev = torch.randn(2, 1 + 12, 6, generator=g), torch.randn(2, 1 + 12, 6, generator=g)
    single = foreground_score(tokens, prev)
    double = foreground_score(tokens.double(), prev.double())
    assert double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"^indicator_weights needs 4 values \(S, D, I, T\), got \[1\.0, 2\.0\]$"):
        foreground_score(tokens, prev, weights=(1.0, 2.0))


@pytest.mark.parametrize(("grid", "p_values"), [
    ((3, 3), [0.3, 0, 0, 0, 0, 0, 0, 0, 0]),  # zero-weight tokens; foreground windows summing to 0.3 < 1
    ((5, 5), [1.0] * 12 + [0.7] + [1.0] * 12),  # the centre window has no pads: its background sums to 0.3
])
def test_spa_with_zero_weights_and_window_sums_below_one(grid, p_values):
    torch.manual_seed(6)
    tokens = torch.randn(1, 1 + len(p_values), 4, dtype=torch.float64)
    p = torch.tensor([p_values], dtype=torch.float64)
    out = spatial_view(tokens, p, grid)[0]
    assert torch.allclose(out, _spa_by_hand(tokens, p, *grid), atol=1e-10)


def test_view_errors_name_the_problem():
    from src.methods.fbclip.mvfbe import build_views

    with pytest.raises(ValueError, match=r"^SPA view: 8 patch tokens do not form the 3x3 grid$"):
        spatial_view(torch.zeros(1, 9, 4), torch.ones(1, 8), (3, 3))
    with pytest.raises(ValueError, match=r"^unknown view 'foo'; valid: \['id', 'sem', 'spa'\]$"):
        build_views(torch.zeros(1, 10, 4), torch.ones(1, 9), ["foo"], (3, 3))
