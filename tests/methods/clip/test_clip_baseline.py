"""Training-free CLIP baseline: shapes, layer choice, text cache, k-shot distances."""

from __future__ import annotations

import pytest
import torch

from src.backbone import CLIPBackbone
from src.methods.clip import CLIPBaseline, CLIPBaselineModel, stage_layers


@pytest.fixture(scope="module")
def model() -> CLIPBaselineModel:
    torch.manual_seed(0)
    return CLIPBaselineModel(CLIPBackbone("tiny-vit", "none", image_size=64), num_stages=2)


def test_stage_layers() -> None:
    assert stage_layers(24, 4) == [6, 12, 18, 24]
    assert stage_layers(12, 4) == [3, 6, 9, 12]
    assert stage_layers(8, 1) == [8]
    assert stage_layers(4, 4) == [1, 2, 3, 4]  # every block is a stage: allowed
    with pytest.raises(ValueError, match="num_stages"):
        stage_layers(4, 5)


def test_zero_shot_shapes_and_ranges(model: CLIPBaselineModel) -> None:
    out = model(torch.randn(3, 3, 64, 64), ["screw", "screw", "metal_nut"])
    assert out.anomaly_map.shape == (3, 8, 8)
    assert out.pred_score.shape == (3,)
    assert ((out.anomaly_map > 0) & (out.anomaly_map < 1)).all()


def test_map_is_mean_of_layer_probabilities(model: CLIPBaselineModel) -> None:
    images = torch.randn(1, 3, 64, 64)
    text = model.text_features("screw")
    taps = model.backbone.encode_image_layers(images, model.layers)
    by_hand = []
    for tokens in taps:
        patches = torch.nn.functional.normalize(model.backbone.project(tokens[:, 1:]), dim=-1)
        by_hand.append((patches @ text.T / model.temperature).softmax(-1)[..., 1])
    expected = torch.stack(by_hand).mean(0).reshape(1, 8, 8)
    assert torch.allclose(model(images, ["screw"]).anomaly_map, expected, atol=1e-6)


def test_text_features_computed_once_per_object(model: CLIPBaselineModel, monkeypatch: pytest.MonkeyPatch) -> None:
    model.clear_caches()
    calls = []
    original = model.backbone.encode_text
    monkeypatch.setattr(model.backbone, "encode_text", lambda texts: calls.append(len(texts)) or original(texts))
    for _ in range(3):
        model(torch.randn(2, 3, 64, 64), ["screw", "screw"])
    assert len(calls) == 2  # normal and abnormal ensembles, once


def test_k_shot_reference_has_zero_distance(model: CLIPBaselineModel) -> None:
    refs = torch.randn(2, 3, 64, 64)
    model.set_references("screw", refs)
    taps = model.backbone.encode_image_layers(refs[:1], model.layers)
    assert model.reference_distance(taps, ["screw"]).abs().max() < 1e-6
    other = model.backbone.encode_image_layers(torch.randn(1, 3, 64, 64), model.layers)
    assert model.reference_distance(other, ["screw"]).max() > 1e-3
    with pytest.raises(KeyError, match="references"):
        model.reference_distance(taps, ["cable"])


def test_lightning_module_is_training_free_and_frozen() -> None:
    module = CLIPBaseline(backbone="tiny-vit", pretrained="none", image_size=64, num_stages=2)
    assert not module.is_trainable and module.trainable_parameter_count() == 0
    meta = module.results_meta()
    assert meta["method"] == "clip" and meta["random_init"] and meta["layers"] == [2, 4]


def test_default_stages_and_the_global_embedding_from_the_last_tap() -> None:
    torch.manual_seed(0)
    backbone = CLIPBackbone("tiny-vit", "none", image_size=64)
    assert CLIPBaselineModel(backbone).layers == stage_layers(backbone.num_layers, 4)
    depth = backbone.num_layers
    images = torch.randn(2, 3, 64, 64)
    # the shortcut only when the *last* tap is the last block (taps may come in any order), else a full pass
    for layers in ([1, 2, depth], [1, depth - 1], [1, depth, 2]):
        model = CLIPBaselineModel(backbone, layers=layers)
        taps = backbone.encode_image_layers(images, model.layers)
        torch.testing.assert_close(model.image_embedding(images, taps), backbone.encode_image(images),
                                   atol=1e-5, rtol=0)
