"""AFR-CLIP's constructors: the paper defaults and every changed value reach the part that uses them
(the heavy parts are stand-ins that record what they were given)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from src.methods.afrclip import AFRCLIP
from src.methods.afrclip import lightning_model as lm
from src.methods.afrclip import torch_model as tm

PAPER_MODEL_ARGS = {
    "backbone": "ViT-L-14-336-quickgelu", "pretrained": "openai", "image_size": 518, "layers": [6, 12, 18, 24],
    "pos_embed_mode": "bicubic_once", "grad_checkpointing": None, "weights_cache_dir": None, "use_cmfr": True,
    "use_sp": True, "sp_stages": [1], "sp_insert": "append", "sp_use_pv": True, "sp_use_pl": True,
    "sp_num_prompts": 5, "sp_source": "wide_resnet50_2", "sp_cnn_pretrained": "auto",
    "sp_drop_after_last_stage": False, "mpfa_kernel": 3, "temperature": 0.07, "cmfr_gate": "vector",
    "cmfr_per_stage": False, "cmfr_normalize": True, "prototypes": "class",
}


def test_lightning_defaults_and_changed_values_reach_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(lm, "AFRCLIPModel", lambda **kwargs: seen.append(kwargs) or torch.nn.Linear(1, 1))
    module = AFRCLIP()
    assert seen[-1] == PAPER_MODEL_ARGS
    hp = module.hparams
    assert (hp.lr, tuple(hp.betas), hp.lr_decay, hp.focal_gamma) == (1e-3, (0.9, 0.999), "inverse_epoch", 2.0)
    assert module.postprocess.sigma == 4.0 and module.image_score_from_map is False
    changed = {
        "backbone": "tiny-vit", "pretrained": "none", "image_size": 32, "layers": [2, 4], "pos_embed_mode":
        "bilinear_per_forward", "grad_checkpointing": False, "weights_cache_dir": "/w", "use_cmfr": False,
        "use_sp": False, "sp_stages": [2], "sp_insert": "overwrite", "sp_use_pv": False, "sp_use_pl": False,
        "sp_num_prompts": 2, "sp_source": "resnet18", "sp_cnn_pretrained": "none",
        "sp_drop_after_last_stage": True, "mpfa_kernel": 5, "temperature": 1.0, "cmfr_gate": "scalar",
        "cmfr_per_stage": True, "cmfr_normalize": False, "prototypes": "agnostic",
    }
    module = AFRCLIP(**changed, eval_sigma=2.0, image_score_from_map=True)
    assert seen[-1] == changed and module.postprocess.sigma == 2.0 and module.image_score_from_map is True


def test_torch_model_defaults_are_the_papers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {}

    def backbone(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - a 24-block stand-in, never run
        calls["backbone"] = (args, kwargs)
        return SimpleNamespace(width=16, embed_dim=8, num_layers=24, grid_size=(37, 37),
                               _check_layers=lambda layers: None)

    def cnn(*args):  # noqa: ANN002, ANN202
        calls["cnn"] = args
        return torch.nn.Identity()

    monkeypatch.setattr(tm, "CLIPBackbone", backbone)
    monkeypatch.setattr(tm, "CNNFeatures", cnn)
    model = tm.AFRCLIPModel()
    assert calls["backbone"] == (("ViT-L-14-336-quickgelu", "openai"), {
        "image_size": 518, "pos_embed_mode": "bicubic_once", "grad_checkpointing": True, "weights_cache_dir": None})
    assert calls["cnn"] == ("wide_resnet50_2", "auto")
    assert model.layers == [6, 12, 18, 24] and model.temperature == 0.07 and model.prototypes == "class"
    assert model.cmfr_normalize is True and model.sp_active is True and model.sp_source == "wide_resnet50_2"
    assert model.plan == {2: "append", 3: "replace", 4: "replace", 5: "replace", 6: "replace"}
    assert model.sp.num_prompts == 5 and model.sp.pl.shape == (5, 16)
    assert [(lin.in_features, lin.out_features) for lin in model.sp.pv] == [(1536, 16)] * 5
    assert model.mpfa.kernel == 3 and model.mpfa.grid_size == (37, 37)
    assert len(model.cmfr) == 1 and model.cmfr[0].gate == "vector" and model.cmfr[0].dim == 8
    assert len(model.stage_adapters.linears) == 4


def test_torch_model_blocks_start_from_their_own_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    from src.methods.afrclip.adapters import StageAdapters, TextAdapter
    from src.methods.afrclip.cmfr import CMFR
    from src.methods.afrclip.sp import SelfPrompting
    from src.seeding import module_seed

    calls = {}

    def backbone(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["backbone"] = kwargs
        return SimpleNamespace(width=16, embed_dim=8, num_layers=4, grid_size=(2, 2), _check_layers=lambda x: None)

    def cnn(*args):  # noqa: ANN002, ANN202 - records the generator state it was built under
        calls["cnn_draw"] = torch.rand(1)
        return torch.nn.Identity()

    monkeypatch.setattr(tm, "CLIPBackbone", backbone)
    monkeypatch.setattr(tm, "CNNFeatures", cnn)
    torch.manual_seed(11)
    with module_seed("afr.sp_cnn"):
        cnn_draw = torch.rand(1)
    with module_seed("afr.sp"):
        sp = SelfPrompting(16, 5, 384)  # resnet18: 128 + 256 channels
    with module_seed("afr.stage_adapters"):
        adapters = StageAdapters(2, 16, 8)
    with module_seed("afr.text_adapter"):
        text = TextAdapter(8)
    with module_seed("afr.cmfr"):
        cmfr = CMFR(8)
    torch.manual_seed(11)
    torch.randn(3)
    model = tm.AFRCLIPModel(layers=[2, 4], sp_source="resnet18", weights_cache_dir="/cache")
    assert calls["backbone"]["weights_cache_dir"] == "/cache" and torch.equal(calls["cnn_draw"], cnn_draw)
    for ours, theirs in ((model.sp, sp), (model.stage_adapters, adapters), (model.text_adapter, text),
                         (model.cmfr[0], cmfr)):
        for (name, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
            assert torch.equal(a, b), name
    assert tm.AFRCLIPModel(layers=[2, 4], use_sp=False).plan == {}
    with pytest.raises(ValueError, match="prototypes"):
        tm.AFRCLIPModel(layers=[2, 4], prototypes="generic")


def test_bad_betas_are_refused_by_their_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lm, "AFRCLIPModel", lambda **kwargs: torch.nn.Linear(1, 1))
    with pytest.raises(ValueError, match=r"^betas must be two numbers \(Adam's beta1, beta2\), got \[0\.9\]$"):
        AFRCLIP(betas=[0.9])
