"""VTFusion's fast paths against the plain forms they replace: φ's skipped identity resizes, the screened
nearest-prototype distances (both bit-identical), and the invalidation of their caches."""

import pytest
import torch
import torch.nn.functional as F

from src.methods.vtfusion import aie
from src.methods.vtfusion.aie import prototype_distances
from src.methods.vtfusion.mpf import SegmentationNet
from src.methods.vtfusion.nearest import PrototypeNorms, screened_cdist
from src.methods.vtfusion.torch_model import VTFusionModel

from .helpers import tiny_kwargs


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


# ---------------------------------------------------------------- screened nearest-prototype distances
def plain_distances(features: torch.Tensor, prototypes: torch.Tensor, topk: int, distance: str) -> torch.Tensor:
    """The form before the screen: the full direct-difference cdist, then the smallest ``topk``."""
    protos = prototypes.to(features.dtype).unsqueeze(0).expand(features.shape[0], -1, -1)
    d = torch.cdist(features, protos, compute_mode="donot_use_mm_for_euclid_dist")
    d = d.square() if distance == "squared" else d
    return d.topk(topk, dim=-1, largest=False, sorted=True).values


def near_ties(dtype: torch.dtype, rows: int = 24, per_row: int = 3, dim: int = 512) -> tuple[torch.Tensor, ...]:
    """(2, rows, dim) features and (rows * per_row + 2 rows, dim) prototypes with hard cases.

    Row r of image 0 has ``per_row`` prototypes at the same distance up to 1e-7 relative (below
    float32 cdist's own rounding, so the float64 screen and cdist order them differently); image 1
    sits exactly on prototypes (cdist's exact zeros). Every other prototype is far.
    """
    g = torch.Generator().manual_seed(3)
    f = torch.randn(rows, dim, generator=g, dtype=torch.float64) * 4
    v = F.normalize(torch.randn(rows, per_row, dim, generator=g, dtype=torch.float64), dim=-1)
    radius = 1.5 * (1 + 1e-7 * torch.rand(rows, per_row, 1, generator=g, dtype=torch.float64))
    ties = (f[:, None] + radius * v).reshape(-1, dim)
    exact = torch.randn(2 * rows, dim, generator=g, dtype=torch.float64) * 4
    prototypes = torch.cat([ties, exact]).to(dtype)
    features = torch.stack([f, exact[:rows]]).to(dtype)
    return features, prototypes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("topk", "distance"), [(1, "euclidean"), (3, "euclidean"), (2, "squared")])
def test_screened_distances_equal_the_full_cdist_exactly(dtype, topk, distance):
    features, prototypes = near_ties(dtype)
    norms = PrototypeNorms()
    with torch.no_grad():
        # The screen must have run (and kept few pairs), or this compares the plain form with itself.
        screened = screened_cdist(features, prototypes, topk, norms)
        assert screened is not None and torch.isfinite(screened).float().mean() < 0.1
        got = prototype_distances(features, prototypes, topk, distance, norms)
    assert torch.equal(got, plain_distances(features, prototypes, topk, distance))
    assert (got[1] == 0).all() if topk == 1 else (got[1, :, 0] == 0).all()


def test_screen_keeps_ties_that_float64_orders_differently_from_cdist():
    """The case the bound exists for: the float64 nearest is not always cdist's float32 nearest."""
    features, prototypes = near_ties(torch.float32)
    f64, p64 = features[0].double(), prototypes.double()
    screen_best = (f64[:, None] - p64[None]).square().sum(-1).argmin(-1)
    cdist_best = torch.cdist(features[:1], prototypes[None], compute_mode="donot_use_mm_for_euclid_dist")[0].argmin(-1)
    assert (screen_best != cdist_best).any()
    with torch.no_grad():
        got = prototype_distances(features, prototypes, 1, "euclidean", PrototypeNorms())
    assert torch.equal(got, plain_distances(features, prototypes, 1, "euclidean"))


def test_screen_falls_back_to_cdist_when_nothing_is_screened_out():
    features = torch.randn(1, 6, 8, generator=torch.Generator().manual_seed(0))
    prototypes = torch.ones(5, 8)  # all at the same distance: every pair is a candidate
    assert screened_cdist(features, prototypes, 1, PrototypeNorms()) is None
    with torch.no_grad():
        got = prototype_distances(features, prototypes, 1, "euclidean", PrototypeNorms())
    assert torch.equal(got, plain_distances(features, prototypes, 1, "euclidean"))


def test_training_distances_are_the_plain_cdist(monkeypatch):
    """With autograd the screen never runs: cdist's backward (zero gradient at an exact 0) stays."""
    def refuse(*args, **kwargs):
        raise AssertionError("screened_cdist ran with autograd enabled")

    monkeypatch.setattr(aie, "screened_cdist", refuse)
    features, prototypes = near_ties(torch.float32)
    features.requires_grad_(True)
    prototype_distances(features, prototypes, 1, "euclidean", PrototypeNorms()).sum().backward()
    assert torch.isfinite(features.grad).all() and (features.grad[1] == 0).all()


def tiny_model() -> VTFusionModel:
    torch.manual_seed(0)
    model = VTFusionModel(**tiny_kwargs()).eval()
    g = torch.Generator().manual_seed(0)
    model.set_text("object")
    model.set_prototypes(torch.randn(2, 3, 32, 32, generator=g))
    return model


def plain_vision_map(model: VTFusionModel, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        stacked = model.stack(model.stage_features(images))
    d = plain_distances(stacked, model.prototypes, 1, "euclidean")
    return d.transpose(1, 2).reshape(images.shape[0], 1, *model.backbone.grid_size)


def test_prototype_cache_follows_load_state_dict_and_in_place_writes():
    model = tiny_model()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.equal(model.maps(images)["vision"], plain_vision_map(model, images))
    assert model._prototype_norms._value is not None  # the screen (and its cache) did run
    # New prototypes that swap which one is nearest: a stale float64 copy would screen the wrong pairs.
    state = model.state_dict()
    state["prototypes"] = state["prototypes"].roll(7, dims=0) * 1.01
    model.load_state_dict(state)
    with torch.inference_mode():
        assert torch.equal(model.maps(images)["vision"], plain_vision_map(model, images))
    with torch.no_grad():
        model.prototypes.copy_(model.prototypes.roll(-3, dims=0))
    with torch.inference_mode():
        assert torch.equal(model.maps(images)["vision"], plain_vision_map(model, images))
