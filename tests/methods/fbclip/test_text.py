"""Prompt learner, MSTFF text fusion and SCR against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from src.methods.fbclip.mstff import TextFusion
from src.methods.fbclip.prompt_learner import PromptLearner
from src.methods.fbclip.scr import scr_loss


def test_prompt_layout_and_eot(tiny_backbone):
    pl = PromptLearner(tiny_backbone, n_ctx=12)
    assert pl.eot_indices.tolist() == [17, 17]
    emb = pl()
    assert emb.shape == (2, 77, tiny_backbone.text_width)
    assert torch.equal(emb[0, 1:13], pl.ctx_normal) and torch.equal(emb[1, 1:13], pl.ctx_abnormal)
    frozen = tiny_backbone.token_embedding(pl.token_ids)
    assert torch.equal(emb[:, 13:], frozen[:, 13:]) and torch.equal(emb[:, 0], frozen[:, 0])
    ids = tiny_backbone.tokenize(["object without defect.", "object with defect."])
    assert torch.equal(pl.token_ids[:, 13:18], ids[:, 1:6])
    assert PromptLearner(tiny_backbone, n_ctx=4).eot_indices.tolist() == [9, 9]
    assert PromptLearner(tiny_backbone, wording="paper").eot_indices.tolist() == [15, 16]
    with pytest.raises(ValueError, match="prompt_wording"):
        PromptLearner(tiny_backbone, wording="fancy")


def test_fusion_weights_and_strategies():
    torch.manual_seed(0)
    W, D = 8, 4
    proj = torch.randn(W, D)
    tokens, eot = torch.randn(2, 77, W), torch.randn(2, D)
    fusion = TextFusion(W, D)
    gp = tokens.mean(1) @ proj  # all 77 positions, padding included
    attn = fusion.mlp((torch.softmax(fusion.selector(tokens), dim=1) * tokens).sum(1))
    project = lambda t: t @ proj  # noqa: E731
    full = fusion(tokens, eot, project)
    assert torch.allclose(full, F.normalize(1.0 * gp + 0.5 * attn + 0.5 * eot, dim=-1), atol=1e-6)
    only_eot = TextFusion(W, D, ["eot"])
    assert torch.allclose(only_eot(tokens, eot, project), F.normalize(eot, dim=-1))
    assert not any(p.requires_grad for p in only_eot.parameters())
    eot_attn = TextFusion(W, D, ["eot", "attn"])
    eot_attn.load_state_dict(fusion.state_dict())
    assert torch.allclose(eot_attn(tokens, eot, project), F.normalize(0.5 * attn + 0.5 * eot, dim=-1), atol=1e-6)
    with pytest.raises(ValueError, match="text_strategies"):
        TextFusion(W, D, ["eot", "cls"])


def test_scr_by_hand():
    torch.manual_seed(1)
    tokens, text = torch.randn(3, 5, 4), F.normalize(torch.randn(2, 4), dim=-1)
    v = F.normalize(tokens.mean(1), dim=-1)
    total = 0.0
    for b in range(3):
        s = [float(v[b] @ text[c]) / 0.07 for c in range(2)]
        z = [math.exp(si - max(s)) for si in s]
        pi = [zi / sum(z) for zi in z]
        ent = -sum(p * math.log(p + 1e-8) for p in pi)
        total += 1.0 * ent + 0.5 * max(0.0, 1.0 - abs(s[1] - s[0]))
    assert math.isclose(float(scr_loss(tokens, text)), 0.15 * total / 3, rel_tol=1e-5)


def test_text_features_cached_at_evaluation_and_refreshed_after_a_step() -> None:
    import torch

    from src.backbone import CLIPBackbone
    from src.methods.fbclip.torch_model import FBCLIPModel

    torch.manual_seed(0)
    model = FBCLIPModel(CLIPBackbone("tiny-vit", "none", image_size=32, text_causal_mask=False), layers=(1, 2, 4))
    calls = []
    original = model.encode_text
    model.encode_text = lambda: calls.append(1) or original()
    with torch.no_grad():
        first = model.text_features()
        assert torch.equal(model.text_features(), first) and len(calls) == 1
    with torch.no_grad():
        model.prompt.ctx_normal.add_(torch.randn_like(model.prompt.ctx_normal))  # as an optimiser step, in place
        assert not torch.allclose(model.text_features(), first) and len(calls) == 2
    model.text_features()  # with gradients: always recomputed
    assert len(calls) == 3
