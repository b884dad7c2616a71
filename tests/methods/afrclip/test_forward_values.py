"""AFR-CLIP's outputs pinned against the float64 re-derivation in ``reference.py``.

A tiny seeded model (tiny-vit at its native 64 px, so the stored position table is used as is;
a resnet18 SP source loaded from a seeded torchvision state dict with non-trivial batch-norm
statistics) is run through the suite's code in float32 and through the reference in float64.
Tolerances are far below the effect of any wrong token, stage, text order, pairing or
normalisation (those move the outputs by 1e-3 or more).
"""

from __future__ import annotations

import pytest
import torch

from tests.batches import make_batch

from . import reference as ref
from .conftest import build_valued as build
from .conftest import seeded_resnet18

NOUNS = {"pcb1": "printed circuit board", "screw": "screw"}
CATEGORIES = ["pcb1", "screw"]
PAPER_LIKE = {"use_sp": True, "sp_use_pv": True, "sp_use_pl": True, "sp_insert": "append",
              "use_cmfr": True, "mpfa_kernel": 3, "temperature": 0.07}
CONFIGS = {
    # Three stages; SP in stages 1-2 = blocks 2 (append) and 3 (refresh): both insertion actions.
    "three-stages": {**PAPER_LIKE, "layers": [2, 3, 4], "sp_stages": [1, 2]},
    # The paper's default sp_stages=[1] with a three-block first stage.
    "stage1": {**PAPER_LIKE, "layers": [3, 4], "sp_stages": [1]},
    # Eq. 18 literally, plain image-text scoring, m = 5, tau = 1, P_l only.
    # Raw (unnormalised) features into one CMFR per stage: MPFA's border counts and the CMFR
    # stage pairing become visible (unit-length features hide a border cell's divisor).
    "per-stage-raw": {**PAPER_LIKE, "layers": [2, 3, 4], "sp_stages": [1], "cmfr_normalize": False,
                      "cmfr_per_stage": True},
    "variants": {**PAPER_LIKE, "layers": [2, 4], "sp_stages": [1, 2], "sp_insert": "overwrite",
                 "use_cmfr": False, "mpfa_kernel": 5, "temperature": 1.0, "sp_use_pv": False},
}
ATOL = 2e-5


def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.randn(2, 3, 64, 64, generator=g)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, cnn_file):
    """(config, suite outputs, reference outputs) for one configuration."""
    cfg = CONFIGS[request.param]
    model = build(cfg, cnn_file)
    x = images()
    with torch.no_grad():
        ours = model.model(x, CATEGORIES)
        batch_out = model(make_batch(x, category=CATEGORIES))
    cnn = seeded_resnet18().double()
    expected = ref.forward(model, x, CATEGORIES, NOUNS, cfg, cnn=cnn)
    return cfg, ours, batch_out, expected


def test_stage_logits_equal_the_reference(pair):
    """Per stage and token: [cos(R_i, F_t^n), cos(R_i, F_t^a)] / tau, stage adapter s on tap s."""
    cfg, ours, _, expected = pair
    assert len(ours.stage_logits) == len(cfg["layers"])
    for s, (a, b) in enumerate(zip(ours.stage_logits, expected["stage_logits"])):
        assert torch.allclose(a.double(), b, atol=ATOL / cfg["temperature"], rtol=0), f"stage {s + 1}"


def test_image_score_is_the_stage_mean_of_the_cls_probability(pair):
    """pred_score = mean over stages of the CLS token's abnormal probability (not patches, not last stage)."""
    _, ours, batch_out, expected = pair
    assert torch.allclose(ours.pred_score.double(), expected["pred_score"], atol=ATOL, rtol=0)
    assert torch.allclose(batch_out.pred_score.double(), expected["pred_score"], atol=ATOL, rtol=0)


def test_anomaly_map_is_the_stage_mean_of_the_patch_probabilities(pair):
    _, ours, batch_out, expected = pair
    assert torch.allclose(ours.anomaly_map.double(), expected["anomaly_map"], atol=ATOL, rtol=0)
    assert torch.allclose(batch_out.anomaly_map.double(), expected["anomaly_map"], atol=ATOL, rtol=0)


def test_the_pinned_quantities_are_sensitive(pair):
    """The alternatives a slip would produce differ from the reference by far more than ATOL."""
    cfg, _, _, expected = pair
    probs = [lg.softmax(-1)[..., 1] for lg in expected["stage_logits"]]
    mean = torch.stack(probs).mean(0)
    margin = 50 * ATOL
    assert (mean[:, 1:].mean(1) - expected["pred_score"]).abs().max() > margin  # mean of patches
    assert (probs[-1][:, 0] - expected["pred_score"]).abs().max() > margin  # last stage only
    assert (1 - expected["pred_score"] - expected["pred_score"]).abs().max() > margin  # text swapped


def test_sp_cnn_feature_is_both_pooled_layers_of_the_renormalised_image(cnn_file):
    """F_cnn = [GAP(layer2); GAP(layer3)] of the image taken from CLIP's to ImageNet's statistics."""
    model = build(CONFIGS["stage1"], cnn_file)
    x = images()
    cnn = seeded_resnet18().double()
    expected = ref.cnn_feature(cnn, x)
    ours = model.model.sp_cnn(x).double()
    assert ours.shape == (2, 128 + 256)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5)
    # Both halves carry signal, and skipping the re-normalisation would be visible.
    assert expected[:, :128].abs().sum() > 0 and expected[:, 128:].abs().sum() > 0
    with torch.no_grad():
        raw = cnn.layer1(cnn.maxpool(cnn.relu(cnn.bn1(cnn.conv1(x.double())))))
    plain = torch.cat([cnn.layer2(raw).mean((2, 3)), cnn.layer3(cnn.layer2(raw)).mean((2, 3))], 1)
    assert (plain - expected).abs().max() > 1e-2


def test_prompts_reach_the_taps_through_the_reference_insertion(cnn_file):
    """Guards the reference itself: without SP its taps differ, so the SP path is really compared."""
    cfg = CONFIGS["three-stages"]
    model = build(cfg, cnn_file)
    x = images()
    plain = ref.vit_taps(model.model.backbone, x, cfg["layers"], None, [], "append")
    with torch.no_grad():
        ours = model.model.visual_taps(x)
    assert not torch.allclose(ours[0].double(), plain[0], atol=1e-4)
