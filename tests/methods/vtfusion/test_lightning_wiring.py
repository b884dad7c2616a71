"""``VTFusion`` (the Lightning side): the paper defaults and every changed value reach the model,
the loss weights, the optimiser settings and the shared post-processing (the model is a stand-in
that records what it was given)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from src.methods.vtfusion import VTFusion
from src.methods.vtfusion import lightning_model as lm

PAPER_MODEL_ARGS = {
    "backbone": "ViT-B-16-plus-240", "pretrained": "laion400m_e31", "image_size": 240, "layers": (3, 6, 9, 12),
    "pos_embed_mode": "bicubic_once", "linear_init": "clip", "adaptor": "coordconv", "vision_topk": 1,
    "hinge_topk": 1, "distance": "euclidean", "r": 1e-5, "learnable_r": False, "alpha": 0.1, "use_ate": True,
    "use_aie": True, "use_mpf": True, "sam_output": "attended", "fusion_dim": 32, "seg_width": 128,
    "seg_bins": (60, 30, 15, 8), "seg_upsample": 4, "prompt_set": "ensemble", "add_normal_state": False,
    "logit_scale": 100.0,
}


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list:
    calls: list = []
    monkeypatch.setattr(lm, "VTFusionModel", lambda **kwargs: calls.append(kwargs) or torch.nn.Linear(1, 1))
    return calls


def test_paper_defaults(seen: list) -> None:
    module = VTFusion()
    assert seen == [PAPER_MODEL_ARGS]
    hp = module.hparams
    assert (hp.lambda_seg, hp.nu, hp.mix_prob) == (40.0, 1e-3, 0.5)
    assert (hp.lr_aie, hp.lr_other, hp.weight_decay, hp.amsgrad) == (1e-3, 1e-4, 1e-5, True)
    assert module.postprocess.sigma == 4.0 and module.image_score_from_map is False and module.category is None


def test_every_value_is_passed_on(seen: list) -> None:
    changed = {
        "backbone": "tiny-vit", "pretrained": "none", "image_size": 32, "pos_embed_mode": "bilinear_per_forward",
        "linear_init": "random", "adaptor": "conv3x3", "vision_topk": 3, "hinge_topk": 2, "distance": "squared",
        "r": 0.5, "learnable_r": True, "alpha": 0.3, "use_ate": False, "use_aie": False, "use_mpf": False,
        "sam_output": "attention_matrix", "fusion_dim": 8, "seg_width": 16, "seg_upsample": 2, "prompt_set": "pair",
        "add_normal_state": True, "logit_scale": 10.0,
    }
    module = VTFusion(**changed, layers=[1, 2], seg_bins=[4, 2], eval_sigma=1.5, image_score_after_smoothing=True,
                      category="bottle", lambda_seg=3.0, nu=0.5, mix_prob=0.25)
    assert seen == [{**changed, "layers": (1, 2), "seg_bins": (4, 2)}]
    assert module.postprocess.sigma == 1.5 and module.image_score_from_map is True and module.category == "bottle"
    assert (module.hparams.lambda_seg, module.hparams.nu, module.hparams.mix_prob) == (3.0, 0.5, 0.25)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"nu": 0.0}, r"^nu must be > 0 \(NFC/AFS are divided by it\), got 0\.0$"),
    ({"mix_prob": 1.5}, r"^mix_prob must be in \[0, 1\], got 1\.5$"),
])
def test_bad_loss_settings_are_refused(seen: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VTFusion(**kwargs)
    assert seen == []


class _StandIn(torch.nn.Module):
    """What the Lightning side reads from ``VTFusionModel``: ``r``, ``prepared`` and one weight."""

    def __init__(self, **kwargs) -> None:  # noqa: ANN003 - the constructor arguments, ignored
        super().__init__()
        self.r = torch.nn.Parameter(torch.tensor(0.25))
        self.weight = torch.nn.Parameter(torch.zeros(3))
        self.register_buffer("prepared", torch.zeros(2, dtype=torch.bool))


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lm, "VTFusionModel", _StandIn)


@pytest.mark.parametrize(("after_smoothing", "score"), [(False, "max_raw_map"), (True, "max_smoothed_map")])
def test_results_meta_by_value(stand_in: None, after_smoothing: bool, score: str) -> None:
    module = VTFusion(category="bottle", lambda_seg=3.0, nu=0.5, alpha=0.3, use_ate=False, use_aie=True,
                      use_mpf=False, image_score_after_smoothing=after_smoothing)
    module.shot_paths = ["/d/bottle/train/good/000.png", "/d/bottle/train/good/001.png"]
    assert module.results_meta() == {
        "method": "vtfusion", "trainable_params": 4, "category": "bottle", "k_shot": 2,
        "shots": ["/d/bottle/train/good/000.png", "/d/bottle/train/good/001.png"], "lambda_seg": 3.0, "nu": 0.5,
        "r": 0.25, "alpha": 0.3, "use_ate": False, "use_aie": True, "use_mpf": False, "image_score": score,
    }


def test_fit_start_prepares_a_fresh_model_and_checks_a_restored_one(stand_in: None) -> None:
    module = VTFusion(category="bottle")
    prepared = []
    module.prepare_category = prepared.append
    data = SimpleNamespace(categories=["screw"])
    module._trainer = SimpleNamespace(datamodule=data)
    module.on_fit_start()
    assert prepared == [data]
    module.model.prepared.fill_(True)
    with pytest.raises(ValueError, match=r"category 'bottle' but the datamodule selects \['screw'\]"):
        module.on_fit_start()
    for restored_ok in (SimpleNamespace(), SimpleNamespace(categories=None), SimpleNamespace(categories=["bottle"])):
        module._trainer = SimpleNamespace(datamodule=restored_ok)  # no category list: nothing to check against
        module.on_fit_start()
    assert prepared == [data]


def test_checkpoint_keeps_category_and_shots_and_an_older_one_keeps_the_configured_values(stand_in: None) -> None:
    module = VTFusion(category="bottle")
    module.shot_paths = ["/d/a.png"]
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["vtfusion"] == {"category": "bottle", "shots": ["/d/a.png"]}
    fresh = VTFusion(category=None)
    fresh.on_load_checkpoint(checkpoint)
    assert (fresh.category, fresh.shot_paths) == ("bottle", ["/d/a.png"])
    older = VTFusion(category="screw")
    older.shot_paths = ["/d/b.png"]
    del checkpoint["vtfusion"]
    older.on_load_checkpoint(checkpoint)
    assert (older.category, older.shot_paths) == ("screw", ["/d/b.png"])


def test_preparing_needs_one_category_and_the_k_shot_protocol(stand_in: None) -> None:
    module = VTFusion()
    with pytest.raises(ValueError, match=r"^VTFusion trains one model per category but the datamodule selects none; "
                                         r"set data\.init_args\.categories to one category \(the launcher loops over "
                                         r"them\) or model\.init_args\.category$"):
        module.prepare_category(SimpleNamespace(categories=[]))
    with pytest.raises(ValueError, match=r"selects \['a', 'b'\]; "):
        module.prepare_category(SimpleNamespace(categories=["a", "b"]))
    with pytest.raises(TypeError, match=r"^SimpleNamespace has no reference_batch\(category\): VTFusion needs the "
                                        r"k-shot protocol \(data\.init_args\.protocol: k-shot\)$"):
        module.prepare_category(SimpleNamespace(categories=["a"]))


def test_training_without_das_fields_is_refused_by_name(stand_in: None) -> None:
    with pytest.raises(KeyError, match=r"training batch has no synthetic_image/synthetic_mask: VTFusion trains on "
                                       r"DAS anomalies; set data\.init_args\.sample_hook: "
                                       r"src\.methods\.vtfusion\.das\.DASHook"):
        VTFusion().training_losses(SimpleNamespace(synthetic_image=None, synthetic_mask=None))


def test_the_torch_model_has_the_same_paper_defaults() -> None:
    import inspect

    from src.methods.vtfusion.torch_model import VTFusionModel

    defaults = {name: p.default for name, p in inspect.signature(VTFusionModel).parameters.items()}
    assert {name: defaults[name] for name in PAPER_MODEL_ARGS} == PAPER_MODEL_ARGS


def test_the_torch_model_refuses_bad_switches_and_topk_by_name() -> None:
    from src.methods.vtfusion.torch_model import VTFusionModel

    from .helpers import tiny_kwargs

    kwargs = {k: v for k, v in tiny_kwargs().items() if k in PAPER_MODEL_ARGS}
    with pytest.raises(ValueError, match=r"^use_ate=False with use_aie=False leaves nothing to train; enable at "
                                         r"least one$"):
        VTFusionModel(**{**kwargs, "use_ate": False, "use_aie": False, "use_mpf": False})
    with pytest.raises(ValueError, match=r"^use_mpf=True needs use_aie=True"):
        VTFusionModel(**{**kwargs, "use_aie": False, "use_mpf": True})
    for name in ("vision_topk", "hinge_topk"):
        with pytest.raises(ValueError, match=rf"^{name}=0 must be in 1\.\.\d+ \(the number of prototypes\)$"):
            VTFusionModel(**{**kwargs, name: 0})
