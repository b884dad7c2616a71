"""The CLIP baseline's scores pinned by an independent float64 re-derivation.

The reference runs open_clip's own model (same weights, float64): its ``encode_text`` and
``encode_image`` and its blocks one by one; the composition (ensemble means, layer mean, softmax
over cos / 0.07, nearest-reference distance) is written out here.
"""

from __future__ import annotations

import open_clip
import pytest
import torch

from src.backbone import CLIPBackbone
from src.methods.clip import CLIPBaselineModel
from src.methods.clip.prompts import ABNORMAL_STATES, NORMAL_STATES, TEMPLATES

D64 = torch.float64


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    backbone = CLIPBackbone("tiny-vit", "none", image_size=64)
    reference = open_clip.create_model("tiny-vit", pretrained=None)
    state = reference.state_dict()
    own = {f"visual.{k}": v for k, v in backbone.visual.state_dict().items()}
    own.update({f"transformer.{k}": v for k, v in backbone.text_transformer.state_dict().items()})
    own.update({"token_embedding.weight": backbone.token_embedding.weight,
                "positional_embedding": backbone.text_positional_embedding,
                "ln_final.weight": backbone.ln_final.weight, "ln_final.bias": backbone.ln_final.bias,
                "text_projection": backbone.text_projection})
    assert set(own) <= set(state)
    state.update(own)
    reference.load_state_dict(state)
    reference = reference.to(D64).eval()
    torch.manual_seed(1)
    return backbone, reference, torch.randn(2, 3, 64, 64), torch.randn(3, 3, 64, 64)


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


_TEXT: dict[str, torch.Tensor] = {}


def ref_text(reference, name: str) -> torch.Tensor:
    if name in _TEXT:
        return _TEXT[name]
    tok = open_clip.get_tokenizer("tiny-vit")
    rows = []
    for states in (NORMAL_STATES, ABNORMAL_STATES):  # row 0 normal, row 1 abnormal
        prompts = [t.format(s.format(name)) for s in states for t in TEMPLATES]
        with torch.no_grad():
            rows.append(unit(unit(reference.encode_text(tok(prompts))).mean(0)))
    _TEXT[name] = torch.stack(rows)
    return _TEXT[name]


def ref_taps(reference, images: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    vis = reference.visual
    with torch.no_grad():
        x = vis.conv1(images.to(D64)).flatten(2).transpose(1, 2)
        x = torch.cat([vis.class_embedding.expand(x.shape[0], 1, -1), x], 1) + vis.positional_embedding
        x = vis.ln_pre(x)
        taps = {}
        for i, block in enumerate(vis.transformer.resblocks, start=1):
            x = block(x)
            taps[i] = x
    return [taps[i] for i in layers]


def ref_scores(reference, images, layers, name, refs=None) -> tuple[torch.Tensor, torch.Tensor]:
    text = ref_text(reference, name)
    vis = reference.visual
    taps = ref_taps(reference, images, layers)
    maps = [torch.softmax(unit(vis.ln_post(t[:, 1:]) @ vis.proj) @ text.T / 0.07, -1)[..., 1] for t in taps]
    amap = torch.stack(maps).mean(0)
    with torch.no_grad():
        score = torch.softmax(unit(reference.encode_image(images.to(D64))) @ text.T / 0.07, -1)[:, 1]
    if refs is not None:
        memory = [unit(t[:, 1:].reshape(-1, t.shape[-1])) for t in ref_taps(reference, refs, layers)]
        dists = [((1 - unit(t[:, 1:]) @ m.T).min(-1).values / 2) for t, m in zip(taps, memory)]
        few = torch.stack(dists).mean(0)
        amap, score = (amap + few) / 2, (score + few.max(1).values) / 2
    return amap.reshape(-1, 8, 8), score


@pytest.mark.parametrize("layers", [[2, 4], [1, 3]])  # last block tapped or not (own image pass)
def test_zero_shot_map_and_score(setup, layers):
    backbone, reference, images, _ = setup
    model = CLIPBaselineModel(backbone, layers=layers)
    out = model(images, ["screw", "screw"])
    amap, score = ref_scores(reference, images, layers, "screw")
    assert torch.allclose(out.anomaly_map.double(), amap, atol=1e-5, rtol=0)
    assert torch.allclose(out.pred_score.double(), score, atol=1e-5, rtol=0)
    assert torch.allclose(model.text_features("screw").double(), ref_text(reference, "screw"), atol=1e-5)
    # the fixture is informative: scores are not saturated and differ between images
    assert (score > 1e-3).all() and (score < 1 - 1e-3).all() and (score[0] - score[1]).abs() > 1e-4


def test_k_shot_map_and_score(setup):
    backbone, reference, images, refs = setup
    model = CLIPBaselineModel(backbone, layers=[2, 4], few_shot=True)
    model.set_references("screw", refs)
    out = model(images, ["screw", "screw"])
    amap, score = ref_scores(reference, images, [2, 4], "screw", refs)
    assert torch.allclose(out.anomaly_map.double(), amap, atol=1e-5, rtol=0)
    assert torch.allclose(out.pred_score.double(), score, atol=1e-5, rtol=0)


def test_prompt_states_keep_their_side():
    # WinCLIP's state phrases: a swap of the two lists flips every score
    assert NORMAL_STATES == ("{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw",
                             "{} without defect", "{} without damage")
    assert ABNORMAL_STATES == ("damaged {}", "{} with flaw", "{} with defect", "{} with damage")
    assert len(TEMPLATES) == 12 and TEMPLATES[0] == "a photo of a {}."
