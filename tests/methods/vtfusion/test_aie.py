"""AIE: identity-initialised adaptor, exact distances, NFC/AFS on hand-computed examples."""

from __future__ import annotations

import torch
from torch import nn

from src.methods.vtfusion.aie import (
    FeatureAdaptor,
    StageLinear,
    afs_loss,
    grid_mask,
    nfc_loss,
    prototype_distances,
    prototypes_from_features,
)


def test_stage_linear_starts_as_clip_projection() -> None:
    ln = nn.LayerNorm(6)
    proj = torch.randn(6, 4)
    layer = StageLinear(ln, proj, "clip")
    tokens = torch.randn(2, 5, 6)
    torch.testing.assert_close(layer(tokens), ln(tokens) @ proj)
    assert all(p is not ln.weight for p in layer.parameters())  # the shared LayerNorm is not owned


def test_adaptor_is_pool_at_init_without_counting_pads() -> None:
    adaptor = FeatureAdaptor(3)
    x = torch.ones(1, 3, 4, 4)
    torch.testing.assert_close(adaptor(x), x)  # pads not counted: a constant map stays constant
    x = torch.randn(2, 3, 5, 5)
    expected = nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    torch.testing.assert_close(adaptor(x), expected)
    conv = FeatureAdaptor(3, "conv3x3")
    torch.testing.assert_close(conv(x), x)


def test_distances_are_exact_and_zero_on_prototypes() -> None:
    feats = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])  # (1, 2, 2)
    protos = torch.tensor([[0.0, 0.0], [6.0, 8.0]])
    d = prototype_distances(feats, protos, topk=2)
    torch.testing.assert_close(d, torch.tensor([[[0.0, 10.0], [5.0, 5.0]]]))
    torch.testing.assert_close(prototype_distances(feats, protos, 1, "squared"), torch.tensor([[[0.0], [25.0]]]))
    big = 1e3 + torch.randn(1, 40, 64)  # large norms: the expanded form would cancel badly
    assert prototype_distances(big, big[0], 1).abs().max() == 0


def test_zero_distance_has_zero_not_nan_gradient() -> None:
    feats = torch.zeros(1, 1, 3, requires_grad=True)
    prototype_distances(feats, torch.zeros(1, 3)).sum().backward()
    assert torch.isfinite(feats.grad).all()


def test_prototypes_are_the_per_location_mean() -> None:
    feats = torch.tensor([[[1.0, 2.0]], [[3.0, 6.0]]])  # k=2, L=1
    torch.testing.assert_close(prototypes_from_features(feats), torch.tensor([[2.0, 4.0]]))


def test_nfc_two_locations() -> None:
    r = 0.5
    d = torch.tensor([[[0.1], [0.75]]])  # hinge at r² = 0.25: max(0, -0.15) = 0, max(0, 0.5) = 0.5
    torch.testing.assert_close(nfc_loss(d, r), torch.tensor(0.25))
    torch.testing.assert_close(nfc_loss(torch.zeros(1, 2, 1), 1e-5), torch.tensor(1e-10).neg().clamp(min=0))


def test_afs_two_locations_counts_only_anomalous() -> None:
    r, alpha = 0.1, 0.2  # (r + α)² = 0.09
    d = torch.tensor([[[0.04], [0.5]]])
    only_first = torch.tensor([[True, False]])
    torch.testing.assert_close(afs_loss(d, only_first, r, alpha), torch.tensor(0.05))
    both = torch.tensor([[True, True]])
    torch.testing.assert_close(afs_loss(d, both, r, alpha), torch.tensor(0.025))
    assert afs_loss(d, torch.zeros(1, 2, dtype=torch.bool), r, alpha) == 0
    far = torch.tensor([[[0.5], [0.6]]])
    assert afs_loss(far, both, r, alpha) == 0


def test_grid_mask_thresholds_area_fraction() -> None:
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1  # one full cell of a 2x2 grid
    mask[..., 2, 2] = 1  # a quarter of another cell
    assert grid_mask(mask, (2, 2)).tolist() == [[True, False, False, False]]
