"""FB-CLIP model: the release's invariants, ablation switches, overfit, Lightning wiring."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from src.methods.fbclip import FBCLIP, FBCLIPModel
from tests.batches import make_batch, objects

from .conftest import exact_auroc

LAYERS = [1, 2, 4]


def build(backbone, seed: int = 0, **kwargs) -> FBCLIPModel:
    """A model whose parameters shared with the default configuration are those of seed ``seed``."""
    torch.manual_seed(seed)
    model = FBCLIPModel(backbone, layers=LAYERS, **kwargs)
    if kwargs:  # extra parameters (deep prompts, other n_ctx) must not shift the others' init
        default = build(backbone, seed)
        own = model.state_dict()
        shared = {k: v for k, v in default.state_dict().items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(shared, strict=False)
    return model


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(5)
    return torch.randn(3, 3, 32, 32)


@pytest.fixture(scope="module")
def reference(tiny_backbone, images):
    model = build(tiny_backbone)
    with torch.no_grad():
        return model, model(images, objects(images)), model.token_sets(images)[0]


def test_outputs_and_init(reference, images):
    model, out, sets = reference
    assert out.pred_score.shape == (3,) and out.anomaly_map.shape == (3, 4, 4)
    assert torch.allclose(out.probs[:, 0, 1], out.pred_score)
    assert len(out.sets) == len(LAYERS) * 3 and out.sets[0].shape == (3, 17, 32)
    assert torch.allclose(torch.softmax(model.layer_weights, 0), torch.full((6,), 1 / 6))
    assert ((out.anomaly_map >= 0) & (out.anomaly_map <= 1)).all()


def test_batch_independence(reference, images):
    model, out, _ = reference
    with torch.no_grad():
        single = model(images[1:2], ["object"])
    assert torch.allclose(single.pred_score, out.pred_score[1:2], atol=1e-5)
    assert torch.allclose(single.anomaly_map, out.anomaly_map[1:2], atol=1e-5)


def test_error_term_is_a_no_op(reference):
    # The release adds 0.5 * sum_k w_k ||z_k - b|| to *both* class logits; softmax ignores it.
    _, out, _ = reference
    logits = out.probs.log()
    shifted = logits + torch.rand(logits.shape[:2]).unsqueeze(-1) * 10
    assert torch.allclose(torch.softmax(shifted, -1), out.probs, atol=1e-6)


def test_gradients_flow_where_they_should(tiny_backbone, images):
    model = build(tiny_backbone)
    out = model(images[:2], ["object"] * 2)
    (out.anomaly_map.mean() + out.pred_score.sum() + model.scr(out)).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"prompt.ctx_normal", "prompt.ctx_abnormal", "fb_attention.fg.scale", "fb_attention.bg.scale",
            "layer_weights", "text_fusion.selector.0.weight", "text_fusion.mlp.2.weight"} <= trained
    assert (model.layer_weights.grad != 0).all()  # all six, also the unused sixth


def test_backbone_unchanged_after_optimiser_step(tiny_backbone, images):
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=LAYERS, lr=1e-2)
    before = {k: v.clone() for k, v in module.model.backbone.state_dict().items()}
    ctx = module.model.prompt.ctx_normal.detach().clone()
    batch = make_batch(images[:2], label=[0, 1])
    opt = module.configure_optimizers()
    assert opt.defaults["betas"] == (0.5, 0.999)
    sum(module.training_losses(batch).values()).backward()
    opt.step()
    after = module.model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(ctx, module.model.prompt.ctx_normal)


# --------------------------------------------------------------------- ablation switches
def _text_and_sets(model, images):
    with torch.no_grad():
        return model.encode_text(), model.token_sets(images)[0]


def test_text_switches_change_text_only(tiny_backbone, images, reference):
    _, _, sets0 = reference
    text0 = reference[1].text
    for kwargs in ({"text_strategies": ["eot"]}, {"prompt_wording": "paper"}, {"deep_prompt_depth": 2},
                   {"n_ctx": 4}):
        text, sets = _text_and_sets(build(tiny_backbone, **kwargs), images)
        assert not torch.allclose(text, text0), kwargs
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(sets, sets0)), kwargs


def test_causal_mask_switch(tiny_backbone):
    pl_model = build(tiny_backbone)
    prompts, eot = pl_model.prompt(), pl_model.prompt.eot_indices
    free = tiny_backbone.encode_text_embeddings(prompts, eot, causal=False).eot
    causal = tiny_backbone.encode_text_embeddings(prompts, eot, causal=True).eot
    assert not torch.allclose(free, causal)
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=LAYERS, text_causal_mask=True)
    assert module.model.backbone.text_causal_mask and not pl_model.backbone.text_causal_mask


def test_view_and_fb_attention_switches(tiny_backbone, images):
    no_bs = build(tiny_backbone, background_subtraction=False)
    text0, full = _text_and_sets(no_bs, images)
    text, sub = _text_and_sets(build(tiny_backbone, background_subtraction=False, views=["spa", "id"]), images)
    assert torch.allclose(text, text0)
    assert len(sub) == 2 * len(LAYERS)
    kept = [s for i, s in enumerate(full) if i % 3 != 1]  # drop SEM
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(sub, kept))
    raw_model = build(tiny_backbone, background_subtraction=False, fb_attention=False)
    _, raw = _text_and_sets(raw_model, images)
    feats = tiny_backbone.encode_image_layers(images, LAYERS)
    assert torch.equal(raw[0], feats[0]) and torch.equal(raw[3], feats[1])  # ID view untouched
    assert not any(p.requires_grad for p in raw_model.fb_attention.parameters())
    with torch.no_grad():
        assert all(torch.allclose(no_bs.fb_attention(r), f, atol=1e-5) for r, f in zip(raw, full))


def test_background_switches(tiny_backbone, images, reference):
    model0, out0, sets0 = reference
    with torch.no_grad():
        raw = build(tiny_backbone, background_subtraction=False).token_sets(images)[0]
    # BS on vs off: the release's formula applied to the refined sets, nothing else.
    from src.methods.fbclip.background import background_bank, background_prototype, subtract_background

    for kwargs, bank, scores in (({}, "half", None), ({"bg_bank": "full"}, "full", None)):
        _, sets = _text_and_sets(build(tiny_backbone, **kwargs), images)
        b = background_prototype(background_bank(raw, bank, scores))
        assert all(torch.allclose(s, subtract_background(r, b), atol=1e-5) for s, r in zip(sets, raw)), kwargs
    _, full_sets = _text_and_sets(build(tiny_backbone, bg_bank="full"), images)
    _, score_sets = _text_and_sets(build(tiny_backbone, bg_candidates="score"), images)
    assert not torch.allclose(full_sets[0], sets0[0])
    assert not torch.allclose(score_sets[0], sets0[0])


def test_mask_switches_change_only_sem_and_spa(tiny_backbone, images):
    _, base = _text_and_sets(build(tiny_backbone, background_subtraction=False), images)
    for kwargs in ({"indicator_weights": [1.0, 0.0, 0.0, 0.0]}, {"soft_mask_values": [0.1, 0.9]}):
        _, sets = _text_and_sets(build(tiny_backbone, background_subtraction=False, **kwargs), images)
        for i, (a, b) in enumerate(zip(sets, base)):
            if i % 3 == 0:  # ID view does not use the mask
                assert torch.allclose(a, b, atol=1e-6), kwargs
        assert any(not torch.allclose(a, b, atol=1e-4) for a, b in zip(sets, base)), kwargs


def test_bad_options_are_named(tiny_backbone):
    with pytest.raises(ValueError, match="bg_bank"):
        build(tiny_backbone, bg_bank="quarter")
    with pytest.raises(ValueError, match="layer_weight_count"):
        build(tiny_backbone, layer_weight_count=2)
    with pytest.raises(ValueError, match="Layer indices"):
        FBCLIPModel(tiny_backbone, layers=[1, 9])


# --------------------------------------------------------------------- training
def test_overfit_one_batch():
    torch.manual_seed(0)
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 3, 4], lr=1e-3,
                    activation_checkpointing=True)
    image = torch.randn(2, 3, 32, 32) * 0.3
    mask = torch.zeros(2, 1, 32, 32)
    mask[1, :, 8:24, 8:24] = 1
    image[1, :, 8:24, 8:24] += 2.0
    batch = make_batch(image, mask=mask, label=[0, 1], category=["a", "a"])
    opt = module.configure_optimizers()
    losses = []
    for _ in range(15):
        loss = sum(module.training_losses(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        out = module.model(image, batch.category)
    up = F.interpolate(out.anomaly_map.unsqueeze(1), size=(32, 32), mode="bilinear", align_corners=False)
    assert losses[-1] < 0.5 * losses[0], losses
    assert exact_auroc(up, mask) >= 0.95
    result = module.test_step(batch, 0)
    assert result.anomaly_map.shape == (2, 32, 32) and result.pred_score.shape == (2,)


def test_activation_checkpointing_gives_the_same_gradients(tiny_backbone, images):
    grads = []
    for flag in (False, True):
        model = build(tiny_backbone, activation_checkpointing=flag)
        out = model(images[:2], ["object"] * 2)
        (out.anomaly_map.sum() + model.scr(out)).backward()
        grads.append(model.fb_attention.fg.to_q.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("norm", ["ln_post", "none"])
def test_plain_projection_norm_against_float64(tiny_backbone, images, norm):
    """FB-Attention off: map = softmax over layers of cos(proj(norm(z)), text)/T, re-derived in float64."""
    model = build(tiny_backbone, background_subtraction=False, fb_attention=False, views=["id"],
                  plain_proj_norm=norm)
    with torch.no_grad():
        out = model(images, objects(images))
        feats = [f.double() for f in tiny_backbone.encode_image_layers(images, LAYERS)]
    ln = tiny_backbone.visual.ln_post
    proj, text = tiny_backbone.visual.proj.double(), out.text.double()
    weights = torch.softmax(model.layer_weights.detach().double(), 0)
    logits = 0
    for i, z in enumerate(feats):
        if norm == "ln_post":
            mu, var = z.mean(-1, keepdim=True), z.var(-1, unbiased=False, keepdim=True)
            z = (z - mu) / torch.sqrt(var + ln.eps) * ln.weight.double() + ln.bias.double()
        v = z @ proj
        logits = logits + weights[i] * (v / v.norm(dim=-1, keepdim=True)) @ text.t() / 0.07
    probs = torch.softmax(logits, -1)
    assert torch.allclose(out.anomaly_map.double(), probs[:, 1:, 1].reshape(-1, 4, 4), atol=1e-5)
    assert torch.allclose(out.pred_score.double(), probs[:, 0, 1], atol=1e-5)


def test_plain_projection_norm_default_and_errors(tiny_backbone):
    assert FBCLIPModel(tiny_backbone, layers=LAYERS).plain_proj_norm == "ln_post"
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=LAYERS, plain_proj_norm="none")
    assert module.model.plain_proj_norm == "none"
    with pytest.raises(ValueError, match="plain_proj_norm='ln' is not known; valid: \\['ln_post', 'none'\\]"):
        FBCLIPModel(tiny_backbone, layers=LAYERS, plain_proj_norm="ln")
