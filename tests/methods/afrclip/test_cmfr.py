import pytest
import torch

from src.methods.afrclip.cmfr import CMFR


def test_shapes_and_equation_6():
    torch.manual_seed(0)
    cmfr = CMFR(8)
    v, t = torch.randn(2, 5, 8), torch.randn(2, 8)
    m_v, m_t = cmfr.weights(v, t)
    assert m_v.shape == m_t.shape == (2, 5, 8)
    assert torch.allclose(cmfr(v, t), t[:, None] + v * m_v)


def test_hand_computed_gate_pipeline():
    cmfr = CMFR(2, hidden=2)
    with torch.no_grad():
        for layer in (cmfr.conv1, cmfr.conv2, cmfr.linear):
            layer.weight.copy_(torch.eye(layer.out_features, layer.in_features))
            layer.bias.zero_()
    v, t = torch.tensor([[[1.0, -2.0]]]), torch.tensor([[0.5, 0.25]])
    # conv1 keeps the first two channels of [v; t] = [1, -2]; ReLU -> [1, 0]; conv2 pads to
    # [1, 0, 0, 0]; sigmoid -> [s(1), .5, .5, .5]; identity Linear; M_v = [s(1), .5].
    m_v = torch.tensor([torch.sigmoid(torch.tensor(1.0)).item(), 0.5])
    expected = t[:, None] + v * m_v
    assert torch.allclose(cmfr(v, t), expected)


def test_zeroed_last_linear_gives_stateless_text_for_every_token():
    cmfr = CMFR(6)
    with torch.no_grad():
        cmfr.linear.weight.zero_()
        cmfr.linear.bias.zero_()
    v, t = torch.randn(3, 7, 6), torch.randn(3, 6)
    r = cmfr(v, t)
    assert torch.equal(r, t[:, None].expand_as(r))


def test_scalar_gate_is_one_weight_per_token():
    cmfr = CMFR(8, gate="scalar")
    m_v, m_t = cmfr.weights(torch.randn(2, 5, 8), torch.randn(2, 8))
    assert m_v.shape == m_t.shape == (2, 5, 1)
    assert cmfr(torch.randn(2, 5, 8), torch.randn(2, 8)).shape == (2, 5, 8)
    assert sum(p.numel() for p in cmfr.parameters()) < sum(p.numel() for p in CMFR(8).parameters())


def test_rejects_unknown_gate():
    with pytest.raises(ValueError, match="cmfr_gate"):
        CMFR(4, gate="channel")
