"""FB-Attention: fused path equals the release's literal computation; learnable temperatures."""

from __future__ import annotations

import torch

from src.methods.fbclip.fb_attention import FBAttention


def test_fused_equals_dense_and_shapes():
    torch.manual_seed(0)
    fb = FBAttention(32, heads=8, head_dim=4)
    with torch.no_grad():
        fb.fg.scale.fill_(0.37)
        fb.bg.scale.fill_(1.9)
    y = torch.randn(2, 10, 32)
    out = fb(y)
    assert out.shape == y.shape
    assert torch.allclose(out, fb(y, dense=True), atol=1e-5)


def test_by_hand_one_head():
    torch.manual_seed(1)
    fb = FBAttention(6, heads=1, head_dim=3)
    y = torch.randn(1, 4, 6)
    g = torch.sigmoid(fb.gate[2](torch.relu(fb.gate[0](y))))

    def branch(br, x):
        h = br.norm(x)
        q, k, v = br.to_q(h), br.to_k(h), br.to_v(h)
        a = torch.softmax(q @ k.transpose(-1, -2) * br.scale, dim=-1)
        return br.to_out(a @ v)

    expected = fb.norm(branch(fb.fg, g * y) + branch(fb.bg, (1 - g) * y))
    assert torch.allclose(fb(y), expected, atol=1e-5)


def test_temperatures_learnable_and_initialised():
    fb = FBAttention(16, heads=8, head_dim=64)
    assert torch.isclose(fb.fg.scale, torch.tensor(0.125)) and torch.isclose(fb.bg.scale, torch.tensor(0.125))
    fb(torch.randn(1, 5, 16)).pow(2).sum().backward()
    assert fb.fg.scale.grad is not None and fb.fg.scale.grad.abs() > 0
    assert fb.bg.scale.grad is not None and fb.bg.scale.grad.abs() > 0


def test_parameter_count_at_vit_l_width():
    # The released model: 4,727,811 for C = 1024, 8 heads x 64.
    assert sum(p.numel() for p in FBAttention(1024).parameters()) == 4_727_811
