"""METHOD=linear: forward and loss against float64 re-derivations, gradients, frozen backbone."""

from __future__ import annotations

import pytest
import torch

from src.methods.linear.prompts import ABNORMAL_STATES, NORMAL_STATES, TEMPLATES, state_prompts

from .conftest import build


def reference_text(model, name: str) -> torch.Tensor:
    """(D, 2) float64: mean of unit-norm sentence embeddings, renormalised, normal then abnormal."""
    cols = []
    for sentences in state_prompts(name):
        emb = model.model.backbone.encode_text(sentences).double()
        emb = emb / emb.norm(dim=-1, keepdim=True)
        mean = emb.mean(0)
        cols.append(mean / mean.norm())
    return torch.stack(cols, 1)


def reference_logits(model, images: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
    """Per tap (B, L, 2) float64 logits written out: 100 * cos(W x + b, t)."""
    taps = model.model.backbone.encode_image_layers(images, model.model.layers)
    text = torch.stack([reference_text(model, n) for n in names])
    out = []
    for linear, tokens in zip(model.model.linears, taps):
        x = tokens[:, 1:].double()
        v = x @ linear.weight.detach().double().T + linear.bias.detach().double()
        v = v / v.norm(dim=-1, keepdim=True)
        out.append(100.0 * torch.einsum("bld,bdk->blk", v, text))
    return out


def test_prompt_ensemble_is_april_gans():
    normal, abnormal = state_prompts("screw")
    assert (len(NORMAL_STATES), len(ABNORMAL_STATES), len(TEMPLATES)) == (7, 5, 35)
    assert len(normal) == 245 and len(abnormal) == 175
    assert normal[0] == "a bad photo of a screw." and normal[35] == "a bad photo of a flawless screw."
    assert abnormal[-1] == "this is one screw with damage in the scene."


def test_forward_matches_float64_rederivation(batch32):
    model = build()
    with torch.no_grad():
        out = model.model(batch32.image, batch32.category)
    ref = reference_logits(model, batch32.image, ["printed circuit board", "screw"])
    assert len(out.layer_logits) == 3
    for got, want in zip(out.layer_logits, ref):
        assert got.shape == (2, 16, 2)
        torch.testing.assert_close(got.double(), want, rtol=0, atol=2e-4)
    probs = torch.stack([(r[..., 1] - r[..., 0]).sigmoid() for r in ref]).mean(0)  # softmax of 2 = sigmoid
    torch.testing.assert_close(out.anomaly_map.double(), probs.reshape(2, 4, 4), rtol=0, atol=1e-6)


def test_image_score_is_max_of_smoothed_map(batch32):
    model = build()
    model.eval()
    with torch.no_grad():
        raw = model(batch32)
        evaluated = model.test_step(batch32, 0)
    torch.testing.assert_close(raw.pred_score, raw.anomaly_map.flatten(1).amax(1))
    assert evaluated.anomaly_map.shape == (2, 32, 32)
    torch.testing.assert_close(evaluated.pred_score, evaluated.anomaly_map.flatten(1).amax(1))
    smoothed = model.postprocess(raw.anomaly_map, (32, 32))
    torch.testing.assert_close(evaluated.anomaly_map, smoothed)


def _focal64(q: torch.Tensor, y: torch.Tensor, gamma: float = 2.0, smooth: float = 1e-5) -> torch.Tensor:
    onehot = torch.stack([1 - y, y], 1).clamp(smooth, 1 - smooth)
    pt = (onehot * q).sum(1) + smooth
    return (-(1 - pt) ** gamma * pt.log()).mean()


def _dice64(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    p, t = p.flatten(1), t.flatten(1)
    return 1 - ((2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()


def _bilinear_corners(grid: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, g, g) -> (B, C, size, size), align_corners=True, written as two interpolation matrices."""
    g = grid.shape[-1]
    pos = torch.arange(size, dtype=torch.float64) * (g - 1) / (size - 1)
    lo = pos.floor().long().clamp(max=g - 2)
    w = pos - lo
    m = torch.zeros(size, g, dtype=torch.float64)
    m[torch.arange(size), lo] = 1 - w
    m[torch.arange(size), lo + 1] += w
    return torch.einsum("ij,bcjk,lk->bcil", m, grid, m)


def test_loss_matches_float64_rederivation(batch32):
    model = build()
    terms = model.training_losses(batch32)
    assert set(terms) == {"focal", "dice_abnormal", "dice_normal"}
    ref = reference_logits(model, batch32.image, ["printed circuit board", "screw"])
    y = batch32.mask[:, 0].double()
    focal = dice_a = dice_n = 0.0
    for logits in ref:
        grid = _bilinear_corners(logits.transpose(1, 2).reshape(2, 2, 4, 4), 32)
        q = grid.softmax(1)
        focal = focal + _focal64(q, y)
        dice_a = dice_a + _dice64(q[:, 1], y)
        dice_n = dice_n + _dice64(q[:, 0], 1 - y)
    for name, want in (("focal", focal), ("dice_abnormal", dice_a), ("dice_normal", dice_n)):
        torch.testing.assert_close(terms[name].double(), want, rtol=1e-4, atol=1e-6, msg=name)


def test_only_linear_layers_train_and_backbone_stays_frozen(batch32):
    model = build()
    model.train()
    assert not model.model.backbone.training
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"model.linears.{i}.{k}" for i in range(3) for k in ("weight", "bias")}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = [lin.weight.detach().clone() for lin in model.model.linears]
    optimizer = model.configure_optimizers()
    assert optimizer.defaults["lr"] == 1e-3 and optimizer.defaults["betas"] == (0.5, 0.999)
    sum(model.training_losses(batch32).values()).backward()
    for i, lin in enumerate(model.model.linears):
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0, i
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    optimizer.step()
    assert all(not torch.equal(b, lin.weight) for b, lin in zip(before, model.model.linears))
    for name, param in model.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name
    assert model.trainable_parameter_count() == 3 * (64 * 32 + 32)


def test_a_few_steps_fit_a_fixed_batch(batch32):
    """The training loop itself learns: 30 Adam steps on one batch lower the loss by a third."""
    model = build()
    model.train()
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = sum(model.training_losses(batch32).values())
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.67 * losses[0], losses


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="image_score_from_map must be true"):
        build(image_score_from_map=False)
    with pytest.raises(ValueError, match="logit_scale must be > 0"):
        build(logit_scale=0.0)
    with pytest.raises(ValueError, match="betas must be two numbers"):
        build(betas=[0.5])
    with pytest.raises(ValueError, match="outside tiny-vit's blocks"):
        build(layers=[2, 9])


def test_checkpoint_holds_only_the_linear_layers(batch32):
    model = build()
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    assert set(checkpoint["state_dict"]) == {f"model.linears.{i}.{k}" for i in range(3) for k in ("weight", "bias")}


def test_loss_on_spread_logits_matches_float64_rederivation():
    """Logits spread over +-15 (a trained probe's range): the upsampling rule and the softmax matter."""
    from src.methods.linear.losses import linear_losses

    g = torch.Generator().manual_seed(3)
    logits = [5 * torch.randn(2, 16, 2, generator=g, dtype=torch.float64) for _ in range(2)]
    mask = torch.zeros(2, 1, 32, 32)
    mask[1, :, 8:16, 16:24] = 1
    terms = linear_losses([lg.float() for lg in logits], (4, 4), mask)
    y = mask[:, 0].double()
    want = {"focal": 0.0, "dice_abnormal": 0.0, "dice_normal": 0.0}
    for lg in logits:
        q = _bilinear_corners(lg.transpose(1, 2).reshape(2, 2, 4, 4), 32).softmax(1)
        want["focal"] += _focal64(q, y)
        want["dice_abnormal"] += _dice64(q[:, 1], y)
        want["dice_normal"] += _dice64(q[:, 0], 1 - y)
    for name, value in want.items():
        torch.testing.assert_close(terms[name].double(), value, rtol=1e-5, atol=1e-6, msg=name)
