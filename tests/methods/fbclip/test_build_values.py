"""FB-CLIP's parts as built: seed labels and initial scales, prompt limits, attention widths, buffers
kept out of checkpoints, and the mask / SEM settings reaching the token sets."""

from __future__ import annotations

import warnings

import pytest
import torch

from src.methods.fbclip.fb_attention import AttentionBranch, FBAttention
from src.methods.fbclip.mstff import TextFusion
from src.methods.fbclip.prompt_learner import PromptLearner
from src.methods.fbclip.torch_model import FBCLIPModel
from src.seeding import module_seed

LAYERS = [1, 2, 4]


def test_prompt_depth_limits(tiny_backbone) -> None:  # noqa: ANN001
    layers = len(tiny_backbone.text_transformer.resblocks)
    with pytest.raises(ValueError, match=r"^deep_prompt_depth=1 must be 0 \(off\) or >= 2$"):
        PromptLearner(tiny_backbone, 2, deep_prompt_depth=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exactly as deep as the text encoder: no warning
        assert len(PromptLearner(tiny_backbone, 2, deep_prompt_depth=layers).deep_prompts) == layers - 1
    with pytest.warns(UserWarning, match=rf"^deep_prompt_depth=99 exceeds the {layers} text layers of tiny-vit; "
                                         rf"using {layers}$"):
        deep = PromptLearner(tiny_backbone, 2, deep_prompt_depth=99)
    assert len(deep.deep_prompts) == layers - 1


def test_prompt_starts_and_buffers(tiny_backbone) -> None:  # noqa: ANN001
    torch.manual_seed(5)
    with module_seed("fb.prompt.deep"):
        deep = [torch.empty(4, tiny_backbone.text_width).normal_(std=0.02)]
    torch.manual_seed(5)
    learner = PromptLearner(tiny_backbone, 3, deep_prompt_depth=2)
    for built, expected in zip(learner.deep_prompts, deep, strict=True):
        assert torch.equal(built.detach(), expected)
    assert 0.01 < float(learner.ctx_normal.std()) < 0.04
    # the tokenised prompt and its embeddings are rebuilt from the backbone: never saved
    assert set(learner.state_dict()) == {"ctx_normal", "ctx_abnormal", "deep_prompts.0"}


def test_model_blocks_start_from_their_own_labels(tiny_backbone) -> None:  # noqa: ANN001
    torch.manual_seed(3)
    with module_seed("fb.prompt"):
        prompt = PromptLearner(tiny_backbone, 12, "released", 0)
    with module_seed("fb.text_fusion"):
        fusion = TextFusion(tiny_backbone.text_width, tiny_backbone.embed_dim, ("gp", "attn", "eot"))
    with module_seed("fb.fb_attention"):
        attention = FBAttention(tiny_backbone.width, 8, 64)
    torch.manual_seed(3)
    torch.randn(5)  # draws before the model is built do not move its blocks' starts
    model = FBCLIPModel(tiny_backbone, layers=LAYERS)
    for ours, theirs in ((model.prompt, prompt), (model.text_fusion, fusion), (model.fb_attention, attention)):
        for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
            assert torch.equal(a, b), name


def test_attention_widths() -> None:
    branch = AttentionBranch(16)
    assert (branch.to_q.out_features, branch.to_k.out_features, branch.to_v.out_features) == (512, 512, 512)
    attention = FBAttention(16, 2, 16)
    assert attention.fg.to_q.out_features == 32 and attention.bg.to_v.out_features == 32


def test_release_ignored_is_empty_without_a_checkpoint() -> None:
    from src.methods.fbclip import FBCLIP

    assert FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=LAYERS).release_ignored == []


@pytest.mark.parametrize("change", [{"mask_threshold": 0.75}, {"sem_alpha": 0.2}, {"soft_mask_values": [0.0, 1.0]}])
def test_mask_and_sem_settings_reach_the_token_sets(tiny_backbone, change: dict) -> None:  # noqa: ANN001
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    torch.manual_seed(0)
    default = FBCLIPModel(tiny_backbone, layers=LAYERS).eval()
    torch.manual_seed(0)
    changed = FBCLIPModel(tiny_backbone, layers=LAYERS, **change).eval()
    with torch.no_grad():
        a, _ = default.token_sets(images)
        b, _ = changed.token_sets(images)
    assert any((x - y).abs().max() > 1e-4 for x, y in zip(a, b, strict=True)), change
