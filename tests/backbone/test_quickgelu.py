"""QuickGELU for OpenAI weights, whatever way the weights are named (tag, auto, checkpoint path)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import open_clip
import pytest
import torch

from src.backbone import CLIPBackbone, register_suite_configs
from src.backbone.weights import is_torchscript_archive, openai_weights

QUICK_AT_ONE = 1.0 / (1.0 + math.exp(-1.702))  # QuickGELU(1) = 1 * sigmoid(1.702)
GELU_AT_ONE = 0.5 * (1.0 + math.erf(1.0 / math.sqrt(2.0)))


def activation_at_one(backbone: CLIPBackbone) -> float:
    """The value of the vision MLP's activation at 1.0 (0.8458 for QuickGELU, 0.8413 for GELU)."""
    return float(backbone.visual.transformer.resblocks[0].mlp.gelu(torch.tensor([1.0])))


@pytest.fixture(scope="module")
def plain_config(tmp_path_factory) -> str:
    """A tiny architecture whose config asks for plain GELU, like open_clip's ``ViT-L-14-336``."""
    folder = tmp_path_factory.mktemp("configs")
    cfg = json.loads((Path(__file__).resolve().parents[2] / "src/backbone/configs/tiny-vit.json").read_text())
    cfg["quick_gelu"] = False
    (folder / "tinyplain-vit.json").write_text(json.dumps(cfg))
    register_suite_configs()
    open_clip.add_model_config(folder)
    return "tinyplain-vit"


@pytest.fixture
def tags(monkeypatch: pytest.MonkeyPatch):
    """Pretend open_clip publishes the given tags for ``tinyplain-vit``."""
    original = open_clip.list_pretrained_tags_by_model

    def use(published: list[str]) -> None:
        monkeypatch.setattr(
            open_clip, "list_pretrained_tags_by_model",
            lambda name: list(published) if name == "tinyplain-vit" else original(name),
        )

    return use


@pytest.fixture(scope="module")
def files(plain_config, tmp_path_factory) -> dict[str, Path]:
    torch.manual_seed(9)
    source = open_clip.create_model(plain_config, pretrained=None)
    folder = tmp_path_factory.mktemp("weights")
    state, jit = folder / "weights.pt", folder / "openai_jit.pt"
    torch.save(source.state_dict(), state)
    torch.jit.script(source).save(str(jit))
    return {"state": state, "jit": jit, "proj": source.visual.proj.detach().clone()}


def test_reference_values_of_the_two_activations(plain_config):
    assert abs(QUICK_AT_ONE - GELU_AT_ONE) > 4e-3
    assert abs(activation_at_one(CLIPBackbone(plain_config, "none")) - GELU_AT_ONE) < 1e-6
    assert abs(activation_at_one(CLIPBackbone("tiny-vit", "none")) - QUICK_AT_ONE) < 1e-6


def test_openai_only_architecture_path_builds_quickgelu(plain_config, files, tags):
    tags(["openai"])
    backbone = CLIPBackbone(plain_config, str(files["state"]))
    assert abs(activation_at_one(backbone) - QUICK_AT_ONE) < 1e-6
    assert backbone.describe()["activation"] == "QuickGELU"
    assert torch.equal(backbone.visual.proj, files["proj"])


def test_torchscript_archive_is_openai_weights(plain_config, files, tags):
    assert is_torchscript_archive(str(files["jit"])) and not is_torchscript_archive(str(files["state"]))
    tags(["openai", "laion2b"])
    backbone = CLIPBackbone(plain_config, str(files["jit"]))
    assert abs(activation_at_one(backbone) - QUICK_AT_ONE) < 1e-6
    assert torch.equal(backbone.visual.proj, files["proj"])


def test_ambiguous_state_dict_is_refused_before_building(plain_config, files, tags):
    tags(["openai", "laion2b"])
    with pytest.raises(ValueError, match=r"ambiguous.*-quickgelu"):
        CLIPBackbone(plain_config, str(files["state"]))


def test_architecture_without_openai_weights_keeps_its_activation(plain_config, files, tags):
    tags(["laion2b"])
    backbone = CLIPBackbone(plain_config, str(files["state"]))
    assert abs(activation_at_one(backbone) - GELU_AT_ONE) < 1e-6


def test_tags_and_auto(plain_config, tags, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    tags(["openai"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # offline 'auto' on an OpenAI architecture: random init, but with the activation of the weights
    monkeypatch.setitem(__import__("src.backbone.weights", fromlist=["x"]).DEFAULT_TAGS, plain_config, "openai")
    with pytest.warns(UserWarning, match="RANDOM-INIT"):
        backbone = CLIPBackbone(plain_config, "auto", weights_cache_dir=str(tmp_path))
    assert abs(activation_at_one(backbone) - QUICK_AT_ONE) < 1e-6


def test_real_architectures_decided_from_the_path(tmp_path: Path):
    path = tmp_path / "weights.pt"
    torch.save({}, path)
    assert openai_weights("ViT-L-14-336", str(path))  # only OpenAI ever published this one
    assert openai_weights("ViT-L-14-336-quickgelu", str(path))
    assert not openai_weights("ViT-B-16-plus-240", str(path))  # LAION only: GELU
    with pytest.raises(ValueError, match="ViT-B-16-quickgelu"):
        openai_weights("ViT-B-16", str(path))
    assert openai_weights("ViT-B-16", "openai") and not openai_weights("ViT-B-16", "laion2b_s34b_b88k")
    assert openai_weights("ViT-L-14-336", "auto") and not openai_weights("ViT-B-16-plus-240", "auto")


def test_path_decisions_by_value_and_the_ambiguity_error_by_its_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "weights.pt"
    torch.save({}, path)
    # A -quickgelu name says QuickGELU, even where GELU-trained weights exist for it too.
    assert openai_weights("ViT-B-16-quickgelu", str(path))
    # A missing file is not decided here (loading it fails later, by name): no OpenAI claim.
    assert not openai_weights("ViT-L-14-336", str(tmp_path / "missing.pt"))
    others = ", ".join(t for t in open_clip.list_pretrained_tags_by_model("ViT-B-16") if t != "openai")[:80]
    expected = (
        f"pretrained={str(path)!r} with backbone 'ViT-B-16' is ambiguous: ViT-B-16 has OpenAI weights (trained "
        f"with QuickGELU) and GELU-trained ones ({others}), and a state-dict file does not say which it holds. "
        "For OpenAI weights use backbone {hint}; for the others pass their tag (pretrained=<tag>) with "
        "weights_cache_dir pointing at the cached file.")
    with pytest.raises(ValueError) as error:
        openai_weights("ViT-B-16", str(path))
    assert str(error.value) == expected.format(hint="`ViT-B-16-quickgelu`") and "openai" not in others
    listed = open_clip.list_models()
    monkeypatch.setattr(open_clip, "list_models", lambda: [m for m in listed if m != "ViT-B-16-quickgelu"])
    with pytest.raises(ValueError) as error:
        openai_weights("ViT-B-16", str(path))
    assert str(error.value) == expected.format(hint="a `-quickgelu` model name")
