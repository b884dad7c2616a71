"""FB-CLIP pinned by value: every stage against the float64 re-derivation in ``reference.py``.

The model runs on a tiny random CLIP (32 px, 4 x 4 patches) with every trainable parameter moved
away from its initial value (LayerNorms, temperatures, layer weights), so that a swapped or
dropped factor changes the numbers. Taps 1, 2, 4 make "previous selected layer" differ from
"previous block".
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.methods.fbclip import FBCLIP, FBCLIPModel, mvfbe
from tests.batches import make_batch, objects

from . import reference as ref

LAYERS = [1, 2, 4]
TOL = 2e-5


def perturb(model: torch.nn.Module, seed: int = 7) -> None:
    """Move every trainable parameter away from its init (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=gen) if p.dim() else 0.0)
        model.fb_attention.fg.scale.fill_(0.21)
        model.fb_attention.bg.scale.fill_(0.07)
        model.layer_weights.copy_(torch.tensor([0.9, -0.4, 0.3, 0.0, 0.5, -1.0]))


@pytest.fixture(scope="module")
def case(tiny_backbone):
    torch.manual_seed(0)
    model = FBCLIPModel(tiny_backbone, layers=LAYERS)
    perturb(model)
    torch.manual_seed(11)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(images, objects(images))
    expected = ref.forward(model, "tiny-vit", images, LAYERS)
    return model, images, out, expected


def close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> bool:
    return torch.allclose(a.double(), b.double(), atol=tol, rtol=0)


def test_fixture_exercises_both_mask_values_and_unsaturated_scores(case):
    _, _, _, expected = case
    for p in expected["masks"]:
        assert set(p.unique().tolist()) == {0.5, 1.0}
    # margins to the 0.5 threshold: float32 rounding cannot flip a token of this fixture
    assert min(float((s - 0.5).abs().min()) for s in expected["scores"]) > 1e-4
    assert (expected["probs"] > 1e-6).all() and (expected["probs"] < 1 - 1e-6).all()


def test_backbone_taps(case):
    model, images, _, expected = case
    taps = model.backbone.encode_image_layers(images, LAYERS)
    assert all(close(a, b) for a, b in zip(taps, expected["taps"]))


def test_text_mstff_and_class_order(case):
    model, _, out, expected = case
    text = expected["text"]
    assert close(out.text, text["text"])
    # row 0 is the normal prompt ("... without defect."), row 1 the abnormal one
    assert text["ids"][0].tolist() != text["ids"][1].tolist()
    assert torch.equal(model.prompt.token_ids, text["ids"])


def test_foreground_score_and_mask(case):
    _, _, _, expected = case
    prev = None
    for tokens, score, p in zip(expected["taps"], expected["scores"], expected["masks"]):
        got = mvfbe.foreground_score(tokens.float(), None if prev is None else prev.float())
        assert close(got, score)
        assert torch.equal(mvfbe.soft_mask(got).double(), p)
        prev = tokens


def test_views(case):
    model, _, _, expected = case
    taps, masks = expected["taps"], expected["masks"]
    for li, (tokens, p) in enumerate(zip(taps, masks)):
        views = mvfbe.build_views(tokens.float(), p.float(), ("id", "sem", "spa"), model.backbone.grid_size)
        for vi, view in enumerate(views):
            assert close(view, expected["views"][3 * li + vi]), (li, vi)


def test_fb_attention(case):
    model, _, _, expected = case
    with torch.no_grad():
        for y, z in zip(expected["views"], expected["refined"]):
            assert close(model.fb_attention(y.float()), z)
            assert close(model.fb_attention(y.float(), dense=True), z)


def test_token_sets_background_subtraction(case):
    model, images, _, expected = case
    with torch.no_grad():
        sets, set_layer = model.token_sets(images)
    assert set_layer == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len(sets) == len(expected["subtracted"]) == 9
    assert all(close(a, b) for a, b in zip(sets, expected["subtracted"]))


def test_projection_fusion_and_scores(case):
    _, _, out, expected = case
    assert all(close(a, b) for a, b in zip(out.sets, expected["projected"]))
    assert close(out.probs, expected["probs"], 1e-6)
    # the fused logit difference, recovered from the probabilities: pins the 1/0.07 and the weights
    diff = (out.probs[..., 1].double().log() - out.probs[..., 0].double().log())
    want = expected["logits"][..., 1] - expected["logits"][..., 0]
    assert close(diff, want, 1e-3 * float(want.abs().max()))
    assert close(out.pred_score, expected["pred_score"], 1e-6)  # CLS token's abnormal probability
    assert close(out.anomaly_map, expected["anomaly_map"], 1e-6)


# --------------------------------------------------------------------- losses and optimiser
@pytest.fixture(scope="module")
def module_case():
    torch.manual_seed(0)
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=LAYERS)
    perturb(module.model, seed=3)
    torch.manual_seed(12)
    images = torch.randn(3, 3, 32, 32)
    mask = torch.zeros(3, 1, 32, 32)
    mask[1, :, 4:20, 6:30] = 1
    mask[2, :, 20:31, 0:9] = 1
    batch = make_batch(images, mask=mask, label=[0, 1, 1])
    return module, batch


def expected_terms(module, batch) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = module.model(batch.image, batch.category)
    up = F.interpolate(out.anomaly_map.double().unsqueeze(1), size=(32, 32), mode="bilinear", align_corners=False)
    return {
        "focal_image": ref.focal(out.pred_score, batch.label, 4.0),
        "focal_pixel": ref.focal(up, batch.mask, 4.0),
        "dice": 0.2 * ref.dice(up, batch.mask),
        "scr": ref.scr(out.sets[-1], out.text),
    }


def test_every_loss_term_with_its_weight(module_case):
    module, batch = module_case
    with torch.no_grad():
        terms = module.training_losses(batch)
    want = expected_terms(module, batch)
    assert set(terms) == set(want)
    for name in want:
        assert abs(float(terms[name]) - float(want[name])) < 1e-5 * max(1.0, float(want[name])), name
    assert all(float(v) > 1e-4 for v in want.values())  # every term is live in this batch


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_loss_total_moves_by_weight_times_change(module_case, monkeypatch):
    import src.methods.fbclip.lightning_model as lm

    module, batch = module_case
    with torch.no_grad():
        base = {k: float(v) for k, v in module.training_losses(batch).items()}
        delta = 0.25
        for fn, moved in (("dice_loss", {"dice": 0.2 * delta}),
                          ("binary_focal_loss", {"focal_image": delta, "focal_pixel": delta})):
            original = getattr(lm, fn)
            monkeypatch.setattr(lm, fn, lambda *a, _f=original, **k: _f(*a, **k) + delta)
            terms = {k: float(v) for k, v in module.training_losses(batch).items()}
            monkeypatch.setattr(lm, fn, original)
            for name in base:
                assert abs(terms[name] - base[name] - moved.get(name, 0.0)) < 1e-6, (fn, name)
        loss = module.training_step(batch, 0)
    assert abs(float(loss) - sum(base.values())) < 1e-5


def test_scr_uses_the_last_set(module_case):
    module, batch = module_case
    with torch.no_grad():
        out = module.model(batch.image, batch.category)
        got = float(module.model.scr(out))
    assert abs(got - float(ref.scr(out.sets[-1], out.text))) < 1e-6
    assert abs(got - float(ref.scr(out.sets[0], out.text))) > 1e-4


def expected_trainable(c: int, w: int, d: int, n_ctx: int = 12, inner: int = 512) -> dict[str, int]:
    """Trainable parameter counts per block for vision width c, text width w, joint width d."""
    branch = 2 * c + 3 * c * inner + inner * c + c + 1
    return {
        "prompt.": 2 * n_ctx * w,
        "text_fusion.selector.": w * (w // 2) + w // 2 + (w // 2) + 1,
        "text_fusion.mlp.": w * w + w + w * d + d,
        "fb_attention.": (c * (c // 2) + c // 2 + c // 2 + 1) + 2 * branch + 2 * c,
        "layer_weights": 6,
    }


def test_optimiser_groups_and_init():
    torch.manual_seed(4)
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=LAYERS)
    opt = module.configure_optimizers()
    assert type(opt) is torch.optim.Adam and len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["lr"] == 5e-5 and group["betas"] == (0.5, 0.999)
    assert group["eps"] == 1e-8 and group["weight_decay"] == 0 and not group["amsgrad"]
    names = {id(p): n for n, p in module.model.named_parameters()}
    in_opt = {names[id(p)] for p in group["params"]}
    counts = expected_trainable(64, 64, 32)
    for prefix, n in counts.items():
        got = sum(p.numel() for name, p in module.model.named_parameters() if name.startswith(prefix)
                  and name in in_opt)
        assert got == n, prefix
    assert all(n.startswith(tuple(counts)) for n in in_opt)  # nothing of the backbone
    assert module.trainable_parameter_count() == sum(counts.values())
    # initial values: prompts N(0, 0.02), 1/6 per layer weight, temperatures 64 ** -0.5
    ctx = torch.cat([module.model.prompt.ctx_normal, module.model.prompt.ctx_abnormal]).detach()
    assert abs(float(ctx.std()) - 0.02) < 0.002 and abs(float(ctx.mean())) < 0.002
    assert torch.equal(module.model.layer_weights.detach(), torch.full((6,), 1 / 6))
    fb = module.model.fb_attention
    assert float(fb.fg.scale.detach()) == float(fb.bg.scale.detach()) == 0.125
