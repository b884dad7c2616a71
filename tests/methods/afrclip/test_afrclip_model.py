import dataclasses

import pytest
import torch
import torch.nn.functional as F

from src.methods.afrclip.prompts import object_name, prompts_for
from tests.batches import make_batch

from .conftest import build


def exact_auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Rank-based (Mann-Whitney) AUROC with average ranks for ties."""
    s, y = scores.flatten().double(), labels.flatten().bool()
    uniq, inverse = torch.unique(s, return_inverse=True)
    order = s.argsort()
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.double)
    mean_rank = torch.zeros(len(uniq), dtype=torch.double).index_add_(0, inverse, ranks)
    mean_rank /= torch.zeros(len(uniq), dtype=torch.double).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = mean_rank[inverse]
    pos, neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def test_exact_auroc_helper():
    assert exact_auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    assert exact_auroc(torch.tensor([1.0, 1.0]), torch.tensor([0, 1])) == 0.5


def test_outputs_and_shapes(batch32):
    model = build()
    out = model(batch32)
    assert out.anomaly_map.shape == (2, 4, 4) and out.pred_score.shape == (2,)
    assert ((out.anomaly_map >= 0) & (out.anomaly_map <= 1)).all()
    evaluated = model.test_step(batch32, 0)
    assert evaluated.anomaly_map.shape == (2, 32, 32)
    assert evaluated.batch.category == ["pcb1", "screw"]


def test_frozen_parts_unchanged_and_gradients_reach_trainables(batch32):
    model = build()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    frozen.update({n: b.clone() for n, b in model.model.sp_cnn.named_buffers()})
    assert any(".sp_cnn." in f".{n}" for n in frozen) and any("backbone.visual" in n for n in frozen)
    model.train()
    assert not model.model.backbone.training and not model.model.sp_cnn.training
    loss = sum(model.training_losses(batch32).values())
    loss.backward()
    m = model.model
    for name, param in [("stage adapter", m.stage_adapters.linears[0].weight),
                        ("stage adapter (last)", m.stage_adapters.linears[-1].weight),
                        ("text adapter", m.text_adapter.weight), ("CMFR conv1", m.cmfr[0].conv1.weight),
                        ("CMFR conv2", m.cmfr[0].conv2.weight), ("SP linear", m.sp.pv[0].weight),
                        ("P_l", m.sp.pl)]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    dim = m.backbone.embed_dim
    last = m.cmfr[0].linear
    assert last.weight.grad[:dim].abs().sum() > 0 and last.bias.grad[:dim].abs().sum() > 0  # M_v half
    assert torch.equal(last.weight.grad[dim:], torch.zeros_like(last.weight.grad[dim:]))  # M_t: dead
    assert torch.equal(last.bias.grad[dim:], torch.zeros_like(last.bias.grad[dim:]))
    opt = model.configure_optimizers()["optimizer"]
    opt.step()
    after = dict(model.named_parameters()) | {n: b for n, b in model.model.sp_cnn.named_buffers()}
    for name, value in frozen.items():
        assert torch.equal(after[name], value), name
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_optimiser_gets_every_trainable_and_the_paper_schedule():
    model = build()
    conf = model.configure_optimizers()
    handed = sum(p.numel() for g in conf["optimizer"].param_groups for p in g["params"])
    assert handed == model.trainable_parameter_count()
    sched = conf["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(3):
        lrs.append(conf["optimizer"].param_groups[0]["lr"])
        conf["optimizer"].step()
        sched.step()
    assert lrs == pytest.approx([1e-3, 1e-3 / 2, 1e-3 / 3])


def test_text_features_are_computed_once_per_category(batch32, monkeypatch):
    model = build()
    calls = []
    encode = model.model.backbone.encode_text
    monkeypatch.setattr(model.model.backbone, "encode_text", lambda texts: calls.append(texts) or encode(texts))
    model(batch32)
    model(dataclasses.replace(batch32, category=["screw", "screw"]))
    assert calls == [prompts_for("pcb1"), prompts_for("screw")]
    assert prompts_for("pcb1") == ["a photo of a normal printed circuit board.",
                                   "a photo of a defective printed circuit board.",
                                   "a photo of a printed circuit board."]


def test_object_names_and_agnostic_prototypes():
    assert object_name("metal_nut") == "metal nut"
    assert object_name("macaroni2") == "macaroni"
    assert object_name("chewinggum") == "chewing gum"
    assert prompts_for("screw", "agnostic")[1] == "a photo of a defective object."
    with pytest.raises(ValueError, match="prototypes"):
        prompts_for("screw", "universal")


def test_zeroed_cmfr_gives_every_pixel_the_same_score(batch32):
    model = build()
    with torch.no_grad():
        model.model.cmfr[0].linear.weight.zero_()
        model.model.cmfr[0].linear.bias.zero_()
    amap = model(batch32).anomaly_map
    assert torch.allclose(amap, amap[:, :1, :1].expand_as(amap))


@pytest.fixture(scope="module")
def default_outputs():
    mask = torch.zeros(2, 1, 32, 32)
    mask[1, :, 8:16, 16:24] = 1
    g = torch.Generator().manual_seed(1)
    batch = make_batch(torch.randn(2, 3, 32, 32, generator=g), category=["pcb1", "screw"])
    with torch.no_grad():
        return build()(batch)


@pytest.mark.parametrize(
    ("switch", "check"),
    [
        ({"use_cmfr": False}, lambda m: m.model.cmfr is None),
        ({"use_sp": False}, lambda m: m.model.sp is None and m.model.sp_cnn is None and not m.model.plan),
        ({"sp_use_pv": False}, lambda m: m.model.sp.pv is None and m.model.sp_cnn is None),
        ({"sp_use_pl": False}, lambda m: m.model.sp.pl is None),
        ({"sp_stages": [1, 2]}, lambda m: sorted(m.model.plan) == [2, 3]),
        ({"sp_insert": "overwrite"}, lambda m: m.model.plan == {2: "replace"}),
        ({"sp_source": "clip_global"}, lambda m: m.model.sp_cnn is None
         and m.model.sp.pv[0].in_features == m.model.backbone.embed_dim),
        ({"mpfa_kernel": 1}, lambda m: m.model.mpfa.kernel == 1),
        ({"temperature": 1.0}, lambda m: m.model.temperature == 1.0),
        ({"cmfr_gate": "scalar"}, lambda m: m.model.cmfr[0].linear.out_features == 2),
        ({"cmfr_per_stage": True}, lambda m: len(m.model.cmfr) == 3),
        ({"prototypes": "agnostic"}, lambda m: m.model.prototypes == "agnostic"),
        ({"cmfr_normalize": False}, lambda m: not m.model.cmfr_normalize),
        ({"sp_drop_after_last_stage": True}, lambda m: m.model.plan.get(3) == "drop"),
    ],
)
def test_each_switch_changes_what_it_names(batch32, default_outputs, switch, check):
    model = build(**switch)
    assert check(model)
    # Same seed, different switch: the outputs must differ (the switch is wired into the forward).
    with torch.no_grad():
        a, b = default_outputs, model(batch32)
    assert not (torch.allclose(a.anomaly_map, b.anomaly_map) and torch.allclose(a.pred_score, b.pred_score))


def test_temperature_only_rescales_the_cosines(batch32):
    with torch.no_grad():
        sharp = build().model(batch32.image, batch32.category)
        paper = build(temperature=1.0).model(batch32.image, batch32.category)
    for a, b in zip(sharp.stage_logits, paper.stage_logits):
        assert torch.allclose(a * 0.07, b, atol=1e-5)
    # tau = 1 (Eqs. 9/13 literally): P_a = sigmoid(S_a - S_n) is confined to [sigmoid(-2), sigmoid(2)].
    bound = float(torch.sigmoid(torch.tensor(2.0)))
    assert paper.anomaly_map.max() <= bound and paper.anomaly_map.min() >= 1 - bound


def test_bad_arguments_name_the_option():
    with pytest.raises(ValueError, match="sp_source"):
        build(sp_source="vgg16")
    with pytest.raises(ValueError, match="temperature"):
        build(temperature=0.0)
    with pytest.raises(ValueError, match="lr_decay"):
        build(lr_decay="cosine")
    with pytest.raises(ValueError, match="Layer indices"):
        build(layers=[2, 9])


def test_checkpoint_holds_only_trainables():
    model = build()
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    kept = sum(v.numel() for v in checkpoint["state_dict"].values())
    assert kept == model.trainable_parameter_count()
    assert not any("backbone" in k for k in checkpoint["state_dict"])


def test_overfit_one_batch():
    """A few steps on one batch drive the loss down and the pixel AUROC on it to >= 0.95.

    Measured 2026-11-29 with data seeds 0, 1, 2: pixel AUROC 0.30/0.37/0.21 before and
    0.9989/0.9990/0.9990 after; final/first loss 0.15/0.14/0.14. Both thresholds (0.95, 0.5)
    leave a wide margin; the forward and loss values themselves are pinned in test_*_values.py.
    """
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 1, 32, 32)
    mask[1, :, 8:24, 8:16] = 1
    mask[3, :, 16:24, 0:16] = 1
    images = torch.randn(4, 3, 32, 32, generator=g) * 0.3 + mask * torch.randn(1, 3, 1, 1, generator=g) * 1.5
    batch = make_batch(images, mask=mask, label=[0, 1, 0, 1], category=["screw"] * 4)
    model = build(lr=1e-2)
    optimizer = model.configure_optimizers()["optimizer"]

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            amap = F.interpolate(model(batch).anomaly_map[:, None], size=(32, 32), mode="bilinear")
        return exact_auroc(amap, mask)

    before = evaluate()
    losses = []
    for _ in range(25):
        model.train()
        loss = sum(model.training_losses(batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    after = evaluate()
    assert losses[-1] < 0.5 * losses[0]
    assert after >= 0.95 and after > before
