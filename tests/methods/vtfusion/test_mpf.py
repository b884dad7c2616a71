"""MPF: position attention, the fusion block at γ = 0, the segmentation net's shapes."""

from __future__ import annotations

import torch

from src.methods.vtfusion.mpf import FusionBlock, PositionAttention, SegmentationNet


def test_attention_rows_are_distributions_and_gamma_zero_is_identity() -> None:
    sam = PositionAttention(8)
    x = torch.randn(2, 8, 3, 4)
    out, attn = sam(x)
    assert attn.shape == (2, 12, 12)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 12))
    torch.testing.assert_close(out, x)
    with torch.no_grad():
        sam.gamma.fill_(1.0)
    assert not torch.allclose(sam(x)[0], x)


def test_fusion_block_with_zero_gamma_equals_its_lift_path() -> None:
    torch.manual_seed(0)
    block = FusionBlock(1, 1, dim=8).eval()
    mv, mt = torch.randn(2, 1, 5, 5), torch.rand(2, 1, 5, 5)
    lifted = torch.cat([block.lift_v(mv), block.lift_t(mt)], 1)
    expected = block.out(torch.relu(block.body(lifted) + block.skip(lifted)))
    torch.testing.assert_close(block(mv, mt), expected)


def test_attention_matrix_variant_has_hw_channels_per_map() -> None:
    block = FusionBlock(1, 1, dim=8, sam_output="attention_matrix", grid=(3, 3))
    assert block.body[0].in_channels == 18
    assert block(torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)).shape == (2, 1, 3, 3)


def test_segmentation_net_at_paper_size() -> None:
    net = SegmentationNet(3, width=8)
    assert net.scaled_bins(60) == [60, 30, 15, 8]
    out = net(torch.randn(1, 3, 15, 15), (240, 240))
    assert out.shape == (1, 1, 240, 240)


def test_paper_width_parameter_count() -> None:
    # From the architecture: φ at width 128 without auxiliary heads ≈ 1.9 M; the fusion block ≈ 33 k.
    assert abs(sum(p.numel() for p in SegmentationNet(3, 128).parameters()) - 1.9e6) < 0.1e6
    assert abs(sum(p.numel() for p in FusionBlock(1, 1, 32).parameters()) - 33e3) < 2e3
