"""ATE: prompts, identity at init, gradients, and the text-guided map."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src.methods.vtfusion.ate import TextAdapter, build_prompts, ensemble_embedding, text_guided_map


def test_prompt_sets() -> None:
    normal, abnormal = build_prompts("metal nut")
    assert len(normal) == 7 * 35 and len(abnormal) == 5 * 35
    assert "a photo of a damaged metal nut." in abnormal
    with_state = build_prompts("x", add_normal_state=True)[0]
    assert len(with_state) == 8 * 35 and with_state[:7 * 35] == build_prompts("x")[0]
    assert "a photo of a normal x." in with_state[7 * 35:] and "a photo of a normal x." not in build_prompts("x")[0]
    assert build_prompts("bottle", "pair") == (["a photo of a normal bottle."], ["a photo of a damaged bottle."])


def test_ensemble_embedding_is_unit_mean_of_unit_vectors() -> None:
    e = torch.tensor([[2.0, 0.0], [0.0, 5.0]])
    torch.testing.assert_close(ensemble_embedding(e), F.normalize(torch.tensor([1.0, 1.0]), dim=0))


def test_adapter_is_identity_at_init_and_trains() -> None:
    adapter = TextAdapter(8)
    text = torch.randn(2, 8)
    torch.testing.assert_close(adapter(text), F.normalize(text, dim=-1))
    (adapter(text)[1] * torch.randn(8)).sum().backward()
    assert adapter.fc2.weight.grad.abs().sum() > 0
    assert not list(TextAdapter(8, enabled=False).parameters())


def test_text_map_sums_abnormal_probabilities_over_stages() -> None:
    text = torch.eye(2)  # normal = e0, abnormal = e1
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).t().reshape(1, 2, 1, 2)  # two locations
    m = text_guided_map([feats, feats], text, logit_scale=1.0)
    p = torch.softmax(torch.tensor([1.0, 0.0]), 0)[1]
    torch.testing.assert_close(m, 2 * torch.stack([p, 1 - p]).reshape(1, 1, 1, 2))
