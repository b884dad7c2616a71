"""φ's fast path (identity pool and resizes of the finest bin skipped) against the plain form: bit-identical."""

import torch
import torch.nn.functional as F

from src.methods.vtfusion.mpf import SegmentationNet


def reference_forward(net: SegmentationNet, maps: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """φ as first written: every pool and resize applied, NCHW throughout."""
    work = (maps.shape[2] * net.upsample, maps.shape[3] * net.upsample)
    x = net.stem(F.interpolate(maps, size=work, mode="bilinear", align_corners=False))
    outs, previous = [], None
    for i, b in enumerate(net.scaled_bins(work[0])):
        y = net.init[i](F.adaptive_avg_pool2d(x, b))
        if previous is not None:
            previous = F.interpolate(previous, size=y.shape[-2:], mode="bilinear", align_corners=False)
            y = net.merge[i - 1](torch.cat([y, previous], dim=1))
        y = y + net.refine[i](y)
        previous = y
        outs.append(F.interpolate(y, size=work, mode="bilinear", align_corners=False))
    x = net.fuse(torch.cat(outs, dim=1))
    x = x + net.residual(x)
    return F.interpolate(net.head(x), size=output_size, mode="bilinear", align_corners=False)


def test_segmentation_net_equals_reference_forward_and_backward():
    torch.manual_seed(0)
    net = SegmentationNet(3, width=16).eval()
    maps = torch.randn(2, 3, 15, 15, generator=torch.Generator().manual_seed(1), requires_grad=True)
    fast, ref = net(maps, (60, 60)), reference_forward(net, maps, (60, 60))
    assert torch.equal(fast, ref)
    (g_fast,) = torch.autograd.grad(fast.square().sum(), maps)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), maps)
    assert torch.equal(g_fast, g_ref)
