"""VTFusion's losses and optimiser pinned by value.

Each term (NFC, AFS, SEG) is compared with its float64 re-derivation on a fixed batch whose
segmentation batch mixes a synthetic and a clean item; the weighted total is checked term by
term (perturbing one term moves the total by exactly its weight times the change); the samples
each loss sees are checked by editing the others; the two Adam groups are checked by parameter
name, learning rate, betas, weight decay and amsgrad.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from src.contracts import Batch
from tests.batches import make_batch

from . import reference as ref
from .fixed import GRID, SIZE, anomaly_batch, fixed_module, reference_features

# training_step logs its terms; outside a Trainer Lightning warns that there is nowhere to log to
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")

LAMBDA, NU = 40.0, 1e-3  # the paper setting's loss weights (checked against the config in test_configs)


@pytest.fixture(scope="module")
def prepared():
    return fixed_module(k=2)


def reference_terms(module, batch: dict, use_synthetic: torch.Tensor) -> dict[str, torch.Tensor]:
    """NFC, AFS and SEG re-derived in float64 (eval mode: BatchNorm statistics, no dropout)."""
    model = module.model
    sd = ref.state64(model)
    r, alpha = float(sd["r"]), model.alpha
    b = batch.image.shape[0]
    feats = reference_features(module, torch.cat([batch.image, batch.synthetic_image]))
    d = ref.nearest(ref.stacked(feats), sd["prototypes"])  # (2B, L)
    nfc = torch.relu(d[:b] - r**2).mean()  # every location of the clean half
    anomalous = ref.area_mask(batch.synthetic_mask.double(), GRID)  # (B, L) on the synthetic half
    afs = (torch.relu((r + alpha) ** 2 - d[b:]) * anomalous).sum() / anomalous.sum()
    text = ref.text_map(feats, ref.text_features(sd["text_embeddings"], sd), model.logit_scale)
    vision = d.reshape(2 * b, 1, *GRID)
    index = torch.arange(b) + b * use_synthetic.long()  # item i: synthetic version or clean image
    vision, text = vision[index], text[index]
    fused = ref.fusion(vision, text, sd)
    final = ref.segment(torch.cat([vision, text, fused], 1), sd, [16, 8, 4, 2], 4, SIZE)
    target = batch.synthetic_mask.double() * use_synthetic.double().view(-1, 1, 1, 1)
    return {"nfc": nfc, "afs": afs, "seg": ((final - target) ** 2).mean()}


@pytest.mark.parametrize("mix", [(True, False), (False, True)])
def test_loss_terms_match_the_rederivation(prepared, mix) -> None:
    module, _ = prepared
    batch = anomaly_batch()
    assert (batch.synthetic_mask.flatten(1).sum(1) > 0).all()  # a clean item's zero target must matter
    use_synthetic = torch.tensor(mix)
    expected = reference_terms(module, batch, use_synthetic)
    # the fixture keeps each hinge active at some locations only, so r, α and the averaging all show
    sd = ref.state64(module.model)
    feats = reference_features(module, torch.cat([batch.image, batch.synthetic_image]))
    d = ref.nearest(ref.stacked(feats), sd["prototypes"])
    anomalous = d[2:][ref.area_mask(batch.synthetic_mask.double(), GRID)]
    margin, radius = (float(sd["r"]) + module.model.alpha) ** 2, float(sd["r"]) ** 2
    assert (anomalous < margin).any() and (anomalous > margin).any()
    assert (d[:2] > radius).any() and (d[:2] < radius).any()
    with torch.no_grad():
        terms = module.model.losses(batch.image, batch.synthetic_image, batch.synthetic_mask, use_synthetic)
    assert set(terms) == {"nfc", "afs", "seg"}
    for name, value in expected.items():
        torch.testing.assert_close(terms[name].double(), value, rtol=1e-4, atol=1e-7, msg=name)


def test_each_loss_sees_only_its_samples(prepared) -> None:
    module, _ = prepared
    batch = anomaly_batch()
    mix = torch.tensor([True, False])

    def terms(b: Batch) -> dict[str, float]:
        with torch.no_grad():
            out = module.model.losses(b.image, b.synthetic_image, b.synthetic_mask, mix)
        return {k: float(v) for k, v in out.items()}

    base = terms(batch)
    new_synthetic = dataclasses.replace(batch, synthetic_image=batch.synthetic_image.flip(-1))
    new_clean = dataclasses.replace(batch, image=batch.image.flip(-1))
    a, c = terms(new_synthetic), terms(new_clean)
    assert a["nfc"] == base["nfc"] and a["afs"] != base["afs"]  # NFC: clean half only
    assert c["afs"] == base["afs"] and c["nfc"] != base["nfc"]  # AFS: synthetic half only
    # SEG sees the synthetic version of item 0 and the clean image of item 1
    assert a["seg"] != base["seg"] and c["seg"] != base["seg"]
    only_synthetic_1 = batch.synthetic_image.clone()
    only_synthetic_1[1] = only_synthetic_1[1].flip(-1)
    assert terms(dataclasses.replace(batch, synthetic_image=only_synthetic_1))["seg"] == base["seg"]


def weighted_total(module, terms: dict[str, torch.Tensor]) -> float:
    """``training_step``'s loss when the model's unweighted terms are ``terms``."""
    module.model.losses = lambda *a, **k: dict(terms)
    try:
        batch = anomaly_batch()
        return float(module.training_step(batch, 0))
    finally:
        del module.model.losses


def test_total_is_nfc_and_afs_over_nu_plus_lambda_seg() -> None:
    module, _ = fixed_module(k=1)
    assert (module.hparams.lambda_seg, module.hparams.nu) == (LAMBDA, NU)
    base = {"nfc": torch.tensor(0.3, dtype=torch.float64), "afs": torch.tensor(0.05, dtype=torch.float64),
            "seg": torch.tensor(0.2, dtype=torch.float64)}
    total = weighted_total(module, base)
    assert total == pytest.approx(0.3 / NU + 0.05 / NU + LAMBDA * 0.2, rel=1e-6)
    weights = {"nfc": 1 / NU, "afs": 1 / NU, "seg": LAMBDA}
    for name, weight in weights.items():
        delta = 0.0125
        moved = weighted_total(module, {**base, name: base[name] + delta})
        assert moved - total == pytest.approx(weight * delta, rel=1e-5), name


def test_training_step_total_matches_the_rederivation() -> None:
    module, _ = fixed_module(k=2, mix_prob=1.0)  # every segmentation item synthetic: no random draw matters
    batch = anomaly_batch()
    expected = reference_terms(module, batch, torch.tensor([True, True]))
    with torch.no_grad():
        total = module.training_step(batch, 0)
    want = (expected["nfc"] + expected["afs"]) / NU + LAMBDA * expected["seg"]
    torch.testing.assert_close(total.double(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mix_prob", [0.0, 0.5, 1.0])
def test_segmentation_batch_mix_is_drawn_with_mix_prob(mix_prob: float) -> None:
    module, _ = fixed_module(k=1, mix_prob=mix_prob)
    seen: list[torch.Tensor] = []

    def capture(clean, synthetic, mask, use_synthetic):
        seen.append(use_synthetic)
        return {"seg": torch.zeros(())}

    module.model.losses = capture
    torch.manual_seed(0)
    n = 4000
    blank = torch.zeros(n, 1, 1, 1)
    batch = make_batch(blank, synthetic_image=blank, synthetic_mask=blank)
    module.training_losses(batch)
    fraction = float(seen[0].float().mean())
    assert seen[0].dtype == torch.bool and fraction == pytest.approx(mix_prob, abs=0.03)


AIE_PREFIXES = ("model.linears.", "model.adaptors.")
OTHER_PREFIXES = ("model.text_adapter.", "model.fusion.", "model.segmenter.")


@pytest.mark.parametrize("switches", [{}, {"learnable_r": True}, {"use_aie": False, "use_mpf": False}])
def test_two_adam_groups_by_name_lr_betas_and_decay(switches: dict) -> None:
    module, _ = fixed_module(k=1, **switches)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    names = {id(p): n for n, p in module.named_parameters()}
    groups = {g["name"]: g for g in optimizer.param_groups}
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    aie = {n for n in trainable if n.startswith(AIE_PREFIXES) or n == "model.r"}
    other = {n for n in trainable if n.startswith(OTHER_PREFIXES)}
    assert aie | other == trainable and not aie & other
    expected = {"aie": (aie, 1e-3), "other": (other, 1e-4)}
    expected = {k: v for k, v in expected.items() if v[0]}
    assert set(groups) == set(expected)
    for name, (params, lr) in expected.items():
        group = groups[name]
        assert {names[id(p)] for p in group["params"]} == params, name
        assert group["lr"] == lr and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8, name
        assert group["weight_decay"] == 1e-5 and group["amsgrad"] is True, name
    if switches.get("learnable_r"):
        assert "model.r" in aie
    if not switches.get("use_aie", True):  # linears frozen at CLIP's projection, only the text side learns
        assert not any(n.startswith(AIE_PREFIXES) for n in trainable)
