"""``CLIPBaseline`` (the Lightning side): constructor values, k-shot references, caches, run description."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from src.backbone import CLIPBackbone
from src.methods.clip import CLIPBaseline


class _Shots:
    """Stands in for the DataModule: a protocol, categories and one reference batch per category."""

    def __init__(self, protocol: str, categories: tuple[str, ...] = ("bottle", "screw")) -> None:
        self.protocol, self.categories, self.asked = protocol, categories, []
        generator = torch.Generator().manual_seed(7)
        self.images = {c: torch.randn(2, 3, 64, 64, generator=generator) for c in categories}

    def reference_batch(self, category: str) -> SimpleNamespace:
        self.asked.append(category)
        return SimpleNamespace(image=self.images[category])


def _module(**overrides) -> CLIPBaseline:  # noqa: ANN003 - constructor overrides
    torch.manual_seed(0)
    kwargs = {"backbone": "tiny-vit", "pretrained": "none", "image_size": 64, "num_stages": 2, **overrides}
    return CLIPBaseline(**kwargs)


def _attach(module: CLIPBaseline, datamodule: object) -> None:
    module._trainer = SimpleNamespace(datamodule=datamodule)


def test_constructor_defaults_reach_the_backbone_and_hparams(monkeypatch: pytest.MonkeyPatch) -> None:
    from src.methods.clip import lightning_model

    calls = []

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - records, then builds a tiny stand-in
        calls.append((args, kwargs))
        return CLIPBackbone("tiny-vit", "none", image_size=64)

    monkeypatch.setattr(lightning_model, "CLIPBackbone", recording)
    module = CLIPBaseline()
    assert calls == [(("ViT-B-16", "auto", 224), {"weights_cache_dir": None})]
    assert dict(module.hparams) == {"backbone": "ViT-B-16", "pretrained": "auto", "image_size": 224, "layers": None,
                                    "num_stages": 4, "temperature": 0.07, "few_shot": False, "eval_sigma": 4.0,
                                    "weights_cache_dir": None}
    assert module.model.layers == [1, 2, 3, 4] and module.model.temperature == 0.07 and module.few_shot is False


def test_backbone_gets_the_size_and_the_weights_folder(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    from src.methods.clip import lightning_model

    calls = []

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append((args, kwargs))
        return CLIPBackbone(*args, **kwargs)

    monkeypatch.setattr(lightning_model, "CLIPBackbone", recording)
    module = _module(image_size=32, weights_cache_dir=str(tmp_path))
    assert calls == [(("tiny-vit", "none", 32), {"weights_cache_dir": str(tmp_path)})]
    assert module.model.backbone.image_size == 32 and module.model.backbone.grid_size == (4, 4)


def test_constructor_passes_every_value_on() -> None:
    module = _module(layers=[1, 3], temperature=0.02, few_shot=True, eval_sigma=2.5)
    assert module.model.layers == [1, 3] and module.model.temperature == 0.02
    assert module.model.few_shot is True and module.few_shot is True
    assert module.model.backbone.image_size == 64 and module.model.backbone.random_init
    assert dict(module.hparams) == {
        "backbone": "tiny-vit", "pretrained": "none", "image_size": 64, "layers": [1, 3], "num_stages": 2,
        "temperature": 0.02, "few_shot": True, "eval_sigma": 2.5, "weights_cache_dir": None,
    }
    default = _module()
    assert default.model.layers == [2, 4] and default.model.temperature == 0.07 and default.few_shot is False


@pytest.mark.parametrize("hook", ["on_test_start", "on_validation_start"])
def test_start_hooks_clear_caches_then_load_each_categorys_references(hook: str) -> None:
    module, shots = _module(few_shot=True), _Shots("k-shot")
    module.model._text_cache["stale"] = torch.zeros(2, 4)
    module.model._memory["stale"] = [torch.zeros(1, 4)]
    _attach(module, shots)
    getattr(module, hook)()
    assert shots.asked == ["bottle", "screw"] and module.model._text_cache == {}
    assert sorted(module.model._memory) == ["bottle", "screw"]
    for category in ("bottle", "screw"):
        taps = module.model.backbone.encode_image_layers(shots.images[category], module.model.layers)
        expected = [torch.nn.functional.normalize(t[:, 1:].reshape(-1, t.shape[-1]).double(), dim=-1) for t in taps]
        assert len(module.model._memory[category]) == 2
        for stored, want in zip(module.model._memory[category], expected, strict=True):
            gh, gw = module.model.backbone.grid_size
            assert stored.shape == (2 * gh * gw, want.shape[-1])
            torch.testing.assert_close(stored.double(), want, atol=1e-6, rtol=0)


def test_zero_shot_loads_no_references_even_from_a_k_shot_datamodule() -> None:
    module, shots = _module(), _Shots("k-shot")
    module.model._memory["stale"] = [torch.zeros(1, 4)]
    _attach(module, shots)
    module.on_test_start()
    assert shots.asked == [] and module.model._memory == {}


@pytest.mark.parametrize("datamodule", [None, _Shots("zero-shot"), SimpleNamespace()])
def test_few_shot_without_the_k_shot_protocol_names_the_options(datamodule: object) -> None:
    module = _module(few_shot=True)
    _attach(module, datamodule)
    with pytest.raises(ValueError, match=r"^few_shot=True needs the k-shot protocol: set "
                       r"--data\.init_args\.protocol=k-shot and --data\.init_args\.k_shot=<k> "
                       r"\(make train \.\.\. K=<k>\)\.$"):
        module.on_validation_start()


def test_training_free_and_described() -> None:
    module = _module(layers=[1, 4], few_shot=True)
    assert module.configure_optimizers() is None
    meta = module.results_meta()
    assert meta["layers"] == [1, 4] and meta["few_shot"] is True
    assert meta["method"] == "clip" and meta["random_init"] is True
    assert _module().results_meta()["few_shot"] is False
