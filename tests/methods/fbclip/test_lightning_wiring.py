"""``FBCLIP`` (the Lightning side): every constructor value reaches the backbone, the model or the
shared post-processing, with the released defaults."""

from __future__ import annotations

import pytest
import torch

from src.methods.fbclip import FBCLIP
from src.methods.fbclip import lightning_model as lm

RELEASED_MODEL_ARGS = {
    "layers": [1, 6, 12, 18, 24], "n_ctx": 12, "prompt_wording": "released", "deep_prompt_depth": 0,
    "text_strategies": ["eot", "gp", "attn"], "views": ["id", "sem", "spa"], "fb_attention": True,
    "plain_proj_norm": "ln_post", "background_subtraction": True, "bg_bank": "half", "bg_candidates": "index",
    "indicator_weights": [0.3, 0.3, 0.3, 0.1], "soft_mask_values": [0.5, 1.0], "mask_threshold": 0.5,
    "sem_alpha": 0.6, "layer_weight_count": 6, "temperature": 0.07, "heads": 8, "head_dim": 64,
    "activation_checkpointing": False, "scr_tau": 0.07, "scr_margin": 1.0, "scr_weight": 0.15,
    "scr_w_entropy": 1.0, "scr_w_margin": 0.5,
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Record what FBCLIP hands to the backbone and to the model (stand-ins: nothing heavy is built)."""
    seen: dict = {}

    def backbone(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen["backbone"] = (args, kwargs)
        return "clip"

    def model(clip, **kwargs):  # noqa: ANN001, ANN003, ANN202
        seen["model"] = (clip, kwargs)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(lm, "CLIPBackbone", backbone)
    monkeypatch.setattr(lm, "FBCLIPModel", model)
    return seen


def test_released_defaults_reach_backbone_and_model(calls: dict) -> None:
    module = FBCLIP()
    assert calls["backbone"] == (("ViT-L-14-336-quickgelu", "openai"), {
        "image_size": 518, "pos_embed_mode": "bilinear_per_forward", "text_causal_mask": False,
        "weights_cache_dir": None})
    assert calls["model"] == ("clip", RELEASED_MODEL_ARGS)
    assert module.postprocess.sigma == 4.0 and module.image_score_from_map is False
    hp = module.hparams
    assert (hp.focal_gamma, hp.dice_weight, hp.lr, hp.beta1, hp.beta2) == (4.0, 0.2, 5e-5, 0.5, 0.999)
    assert module.release_checkpoint is None and not module.release_loaded


def test_every_value_is_passed_on(calls: dict) -> None:
    changed = {
        "layers": [2, 4], "n_ctx": 3, "prompt_wording": "paper", "deep_prompt_depth": 2,
        "text_strategies": ["eot"], "views": ["id"], "fb_attention": False, "plain_proj_norm": "none",
        "background_subtraction": False, "bg_bank": "full", "bg_candidates": "score",
        "indicator_weights": [0.1, 0.2, 0.3, 0.4], "soft_mask_values": [0.0, 1.0], "mask_threshold": 0.4,
        "sem_alpha": 0.3, "layer_weight_count": 2, "temperature": 0.05, "activation_checkpointing": True,
        "scr_tau": 0.1, "scr_margin": 2.0, "scr_weight": 0.3, "scr_w_entropy": 0.5, "scr_w_margin": 0.25,
    }
    renamed = {"fb_heads": 4, "fb_head_dim": 16}
    module = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, weights_cache_dir="/w",
                    text_causal_mask=True, eval_sigma=2.5, image_score_from_map=True, **changed, **renamed)
    assert calls["backbone"] == (("tiny-vit", "none"), {
        "image_size": 32, "pos_embed_mode": "bilinear_per_forward", "text_causal_mask": True,
        "weights_cache_dir": "/w"})
    assert calls["model"] == ("clip", {**changed, "heads": 4, "head_dim": 16})
    assert module.postprocess.sigma == 2.5 and module.image_score_from_map is True


def test_torch_model_defaults_are_the_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from src.methods.fbclip import torch_model as tm

    calls: dict = {}

    def recorder(name: str):  # noqa: ANN202
        def build(*args):  # noqa: ANN002, ANN202
            calls[name] = args
            return torch.nn.Linear(1, 1)
        return build

    for name in ("PromptLearner", "TextFusion", "FBAttention"):
        monkeypatch.setattr(tm, name, recorder(name))
    clip = SimpleNamespace(width=16, text_width=12, embed_dim=8, _check_layers=lambda layers: None)
    model = tm.FBCLIPModel(clip)
    assert calls == {"PromptLearner": (clip, 12, "released", 0), "TextFusion": (12, 8, ("gp", "attn", "eot")),
                     "FBAttention": (16, 8, 64)}
    assert model.layers == (1, 6, 12, 18, 24) and tuple(model.views) == ("id", "sem", "spa")
    assert model.use_fb_attention is True and model.plain_proj_norm == "ln_post"
    assert model.background_subtraction is True and (model.bg_bank, model.bg_candidates) == ("half", "index")
    assert model.indicator_weights == (0.3, 0.3, 0.3, 0.1) and model.soft_mask_values == (0.5, 1.0)
    assert (model.mask_threshold, model.sem_alpha, model.temperature) == (0.5, 0.6, 0.07)
    assert model.activation_checkpointing is False
    assert model.scr_args == {"tau": 0.07, "margin": 1.0, "weight": 0.15, "w_entropy": 1.0, "w_margin": 0.5}
    torch.testing.assert_close(model.layer_weights.detach(), torch.full((6,), 1 / 6))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"bg_candidates": "random"}, r"^bg_candidates='random' is not known; valid: \['index', 'score'\]$"),
    ({"soft_mask_values": [0.5]}, r"^soft_mask_values needs \(background, foreground\), got \[0\.5\]$"),
    ({"indicator_weights": [1, 2]}, r"^indicator_weights needs 4 values \(S, D, I, T\), got \[1, 2\]$"),
    ({"layers": [1, 2, 3], "layer_weight_count": 2}, r"^layer_weight_count=2 must be >= the number of layers \(3\)$"),
])
def test_torch_model_refuses_bad_settings_by_name(kwargs: dict, message: str) -> None:
    from types import SimpleNamespace

    from src.methods.fbclip import torch_model as tm

    clip = SimpleNamespace(width=16, text_width=12, embed_dim=8, _check_layers=lambda layers: None)
    with pytest.raises(ValueError, match=message):
        tm.FBCLIPModel(clip, **kwargs)


def test_as_many_layer_weights_as_layers_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from src.methods.fbclip import torch_model as tm

    for name in ("PromptLearner", "TextFusion", "FBAttention"):
        monkeypatch.setattr(tm, name, lambda *args: torch.nn.Linear(1, 1))
    clip = SimpleNamespace(width=16, text_width=12, embed_dim=8, _check_layers=lambda layers: None)
    assert tm.FBCLIPModel(clip, layers=[1, 2, 3], layer_weight_count=3).layer_weights.shape == (3,)


def test_prompt_learner_defaults_and_limits() -> None:
    from src.backbone import CLIPBackbone
    from src.methods.fbclip.mstff import check_strategies
    from src.methods.fbclip.prompt_learner import PromptLearner

    clip = CLIPBackbone("tiny-vit", "none", image_size=32)
    one = PromptLearner(clip, n_ctx=1, deep_prompt_depth=2)  # one context token is allowed
    assert one.ctx_normal.shape == (1, clip.text_width)
    assert [tuple(p.shape) for p in one.deep_prompts] == [(4, clip.text_width)]  # 4 tokens per deep layer
    with pytest.raises(ValueError, match=r"^n_ctx must be >= 1, got 0$"):
        PromptLearner(clip, n_ctx=0)
    with pytest.raises(ValueError, match=r"^text_strategies=\['eot', 'eot'\] must be a non-empty subset of "
                                         r"\['gp', 'attn', 'eot'\] without repeats$"):
        check_strategies(["eot", "eot"])
