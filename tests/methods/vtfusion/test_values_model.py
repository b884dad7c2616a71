"""VTFusion's forward pass pinned by value against the float64 re-derivation in ``reference.py``.

The tiny model has fixed non-trivial weights (``fixed.py``): distinct linear layers and adaptors
per stage, a non-zero attention scale, BatchNorm statistics away from (0, 1). Each map is compared
with its re-derivation, so the stage pairing, the stage sum, the class order, the distances, the
prototype statistics, the attention direction and the image-score source are all pinned.
"""

from __future__ import annotations

import pytest
import torch

from src.methods.vtfusion import VTFusion
from tests.batches import make_batch

from . import reference as ref
from .fixed import GRID, SIZE, fixed_module, images, reference_features

TOL = dict(rtol=1e-4, atol=1e-5)
#: φ's pool sides at the tiny model's 16 x 16 working size (4 x 4 grid, up-sampling 4): the
#: 60/30/15/8 bins defined at 60 x 60, scaled by 16/60 and rounded.
TINY_BINS = [16, 8, 4, 2]


def close(actual: torch.Tensor, expected: torch.Tensor, **tol) -> None:
    torch.testing.assert_close(actual.detach().double(), expected, **{**TOL, **tol})


@pytest.fixture(scope="module")
def prepared():
    return fixed_module(k=2)


def test_prototypes_are_the_shot_mean_and_m_v_the_largest_shot_distance(prepared) -> None:
    module, dm = prepared
    shots = ref.stacked(reference_features(module, dm.shots))  # (k, L, n·D)
    prototypes = shots.mean(0)
    close(module.model.prototypes, prototypes)
    d = ref.nearest(shots, prototypes)  # (k, L)
    m_v = d.max()
    # the fixture must separate max from mean, else a mean-for-max slip could not show
    assert float(m_v - d.mean()) > 0.5
    close(module.model.vision_scale, m_v)


def test_text_embeddings_row_0_normal_row_1_abnormal() -> None:
    module, _ = fixed_module(k=1)
    backbone = module.model.backbone
    expected = []
    for sentence in ("a photo of a normal metal nut.", "a photo of a damaged metal nut."):  # the paper's pair
        e = backbone.encode_text([sentence]).double()[0]
        expected.append(e / e.norm())
    close(module.model.text_embeddings, torch.stack(expected))


def test_maps_and_image_score_match_the_rederivation(prepared) -> None:
    module, _ = prepared
    model = module.model
    x = images(3, seed=20)
    sd = ref.state64(model)
    feats = reference_features(module, x)
    vision = ref.nearest(ref.stacked(feats), sd["prototypes"]).reshape(3, 1, *GRID)
    text = ref.text_map(feats, ref.text_features(sd["text_embeddings"], sd), model.logit_scale)
    fused = ref.fusion(vision, text, sd)
    final = ref.segment(torch.cat([vision, text, fused], 1), sd, TINY_BINS, 4, SIZE)
    with torch.no_grad():
        maps = model.maps(x)
        out = module(make_batch(x))
    close(maps["vision"], vision)
    close(maps["text"], text)
    close(model.fusion(maps["vision"], maps["text"]), fused)
    close(maps["final"], final)
    close(out.anomaly_map, final[:, 0])
    # the image score is the maximum of the raw (unsmoothed) M^f
    close(out.pred_score, final.flatten(1).amax(1))
    assert model.segmenter.scaled_bins(16) == TINY_BINS


def test_attention_matrix_option_matches_the_rederivation() -> None:
    module, _ = fixed_module(k=2, sam_output="attention_matrix")
    model = module.model
    x = images(2, seed=30)
    sd = ref.state64(model)
    feats = reference_features(module, x)
    vision = ref.nearest(ref.stacked(feats), sd["prototypes"]).reshape(2, 1, *GRID)
    text = ref.text_map(feats, ref.text_features(sd["text_embeddings"], sd), model.logit_scale)
    with torch.no_grad():
        close(model.fusion(vision.float(), text.float()), ref.fusion(vision, text, sd, "attention_matrix"))


@pytest.mark.parametrize("use_aie", [True, False])
def test_direct_combination_baseline_matches_the_rederivation(use_aie: bool) -> None:
    module, _ = fixed_module(k=2, use_mpf=False, use_aie=use_aie)
    model = module.model
    x = images(2, seed=40)
    sd = ref.state64(model)
    feats = reference_features(module, x, adaptor=use_aie)
    text = ref.text_map(feats, ref.text_features(sd["text_embeddings"], sd), model.logit_scale)
    combined = text / 4  # M^t / L with L = 4 stages
    if use_aie:
        vision = ref.nearest(ref.stacked(feats), sd["prototypes"]).reshape(2, 1, *GRID)
        combined = 0.5 * (combined + vision / sd["vision_scale"])
    expected = torch.nn.functional.interpolate(combined, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    with torch.no_grad():
        close(model.maps(x)["final"], expected)


def test_vision_topk_channels_are_the_k_nearest_distances_ascending() -> None:
    module, _ = fixed_module(k=2, vision_topk=3)
    model = module.model
    x = images(2, seed=50)
    feats = reference_features(module, x)
    d = ref.all_distances(ref.stacked(feats), ref.state64(model)["prototypes"])
    expected = d.sort(-1).values[..., :3].transpose(1, 2).reshape(2, 3, *GRID)
    with torch.no_grad():
        close(model.maps(x)["vision"], expected)


def test_initial_state_before_any_perturbation() -> None:
    """The starting point the method relies on: CLIP's projection, identity adaptor and ATE, γ = 0."""
    torch.manual_seed(0)
    model = VTFusion(backbone="tiny-vit", pretrained="none", image_size=SIZE, layers=[1, 2, 3, 4],
                     prompt_set="pair").model
    proj = model.backbone.visual.proj.detach()
    dim = proj.shape[1]
    for linear, adaptor in zip(model.linears, model.adaptors):
        assert torch.equal(linear.linear.weight, proj.t()) and not linear.linear.bias.any()
        weight = adaptor.conv.weight[:, :, 0, 0]
        assert torch.equal(weight[:, :dim], torch.eye(dim)) and not weight[:, dim:].any()
        assert not adaptor.conv.bias.any()
    assert not model.text_adapter.fc2.weight.any() and not model.text_adapter.fc2.bias.any()
    # fc1 keeps torch's default init, |w| <= 1/sqrt(fan_in)
    assert 0 < model.text_adapter.fc1.weight.abs().max() <= dim**-0.5
    assert not model.fusion.sam_v.gamma.detach().any() and not model.fusion.sam_t.gamma.detach().any()
    assert model.logit_scale == 100.0 and float(model.r) == pytest.approx(1e-5) and model.alpha == 0.1
    assert "r" not in dict(model.named_parameters())  # a constant, not trained


@pytest.mark.parametrize("after_smoothing", [False, True])
def test_evaluation_image_score_source(after_smoothing: bool) -> None:
    """Paper: the maximum of the raw M^f; option: the maximum of the smoothed map the step returns."""
    module, _ = fixed_module(k=2, image_score_after_smoothing=after_smoothing)
    x = images(2, seed=60)
    with torch.no_grad():
        raw = module.model.maps(x)["final"][:, 0]
        out = module.evaluation_step(make_batch(x))
    smoothed_max, raw_max = out.anomaly_map.flatten(1).amax(1), raw.flatten(1).amax(1)
    assert module.postprocess.sigma == 4.0
    assert (smoothed_max - raw_max).abs().min() > 1e-3  # the two sources differ on this input
    torch.testing.assert_close(out.pred_score, smoothed_max if after_smoothing else raw_max)


def test_distances_at_the_paper_grid_are_direct_differences() -> None:
    """225 locations (ViT-B-16-plus-240 at 240 px): a feature on its prototype is at exactly 0.

    Beyond 25 rows torch's default ``cdist`` switches to the expanded form, whose float32
    cancellation (about 1e-3 of the feature norm) is as large as the AFS margin.
    """
    from src.methods.vtfusion.aie import prototype_distances

    g = torch.Generator().manual_seed(3)
    features = 10 * torch.randn(2, 225, 64, generator=g)
    prototypes = features[0]
    got = prototype_distances(features, prototypes, topk=3)
    expected = ref.all_distances(features.double(), prototypes.double()).sort(-1).values[..., :3]
    assert float(got[0, :, 0].abs().max()) == 0.0
    close(got, expected, rtol=1e-6, atol=1e-5)
