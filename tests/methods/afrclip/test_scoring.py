import torch

from src.methods.afrclip.cmfr import CMFR
from src.methods.afrclip.scoring import prototype_logits


def test_two_token_example_by_hand():
    query = torch.tensor([[[2.0, 0.0], [1.0, 1.0]]])  # (1, 2, 2): one image, two tokens
    normal, abnormal = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    logits = prototype_logits(query, normal, abnormal, temperature=1.0)
    c = 2 ** -0.5
    assert torch.allclose(logits, torch.tensor([[[1.0, 0.0], [c, c]]]))
    p_abn = logits.softmax(-1)[..., 1]
    # token 0: softmax([1, 0])[1] = 1 / (1 + e); token 1: equal cosines -> 0.5
    assert torch.allclose(p_abn, torch.tensor([[1 / (1 + torch.e), 0.5]]))
    # temperature 0.07 divides the cosines before the softmax
    sharp = prototype_logits(query, normal, abnormal, temperature=0.07).softmax(-1)[..., 1]
    assert torch.allclose(sharp, torch.tensor([[1 / (1 + torch.exp(torch.tensor(1 / 0.07))), 0.5]]))


def test_text_on_text_two_tokens_through_cmfr_by_hand():
    # Gate M_v = 1 everywhere: zero weights, bias 1 on the M_v half, so R_i = t + v_i.
    cmfr = CMFR(2)
    with torch.no_grad():
        cmfr.linear.weight.zero_()
        cmfr.linear.bias.copy_(torch.tensor([1.0, 1.0, 0.0, 0.0]))
    t = torch.tensor([[1.0, 0.0]])
    v = torch.tensor([[[0.0, 0.0], [-1.0, 1.0]]])
    r = cmfr(v, t)
    assert torch.allclose(r, torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    normal, abnormal = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    p_abn = prototype_logits(r, normal, abnormal, temperature=1.0).softmax(-1)[..., 1]
    s = torch.sigmoid(torch.tensor(1.0))
    assert torch.allclose(p_abn, torch.tensor([[1 - s, s]]))
