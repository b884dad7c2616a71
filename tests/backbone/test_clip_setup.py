"""What CLIPBackbone's constructor records: defaults, sizes, describe(), error messages, rehearsal twins."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch

from src.backbone import CLIPBackbone


def _describe(**changes: object) -> dict:
    tiny = {"backbone": "tiny-vit", "pretrained": "none", "checkpoint": None, "random_init": True, "image_size": 64,
            "pos_embed_mode": "bicubic_once", "activation": "QuickGELU", "shrunk_from": None, "width": 64}
    return {**tiny, **changes}


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # CLIPBackbone() means ViT-B-16 with pretrained="auto"; a tiny model stands in for the build
    built = []
    create = open_clip.create_model

    def stand_in(name: str, pretrained: object = None, force_quick_gelu: bool = False) -> torch.nn.Module:
        built.append((name, pretrained, force_quick_gelu))
        return create("tiny-vit", pretrained=None, force_quick_gelu=force_quick_gelu)

    monkeypatch.setattr(open_clip, "create_model", stand_in)
    for var in ("HOME", "HF_HOME"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.warns(UserWarning, match="RANDOM-INIT BACKBONE: ViT-B-16 runs on random weights"):
        backbone = CLIPBackbone()
    assert built == [("ViT-B-16", None, True)]  # auto means OpenAI's weights for ViT-B-16: QuickGELU
    assert backbone.describe() == _describe(backbone="ViT-B-16", pretrained="auto")
    assert backbone.text_causal_mask is True and backbone.grad_checkpointing is False


def test_sizes_and_describe_with_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model("tiny-vit", pretrained=None).state_dict(), path)
    backbone = CLIPBackbone("tiny-vit", str(path), image_size=96, pos_embed_mode="bilinear_per_forward",
                            text_causal_mask=False, grad_checkpointing=True)
    assert backbone.describe() == _describe(pretrained=str(path), checkpoint=str(path), random_init=False,
                                            image_size=96, pos_embed_mode="bilinear_per_forward")
    sizes = (backbone.patch_size, backbone.native_size, backbone.grid_size, backbone.num_patches)
    assert sizes == (8, 64, (12, 12), 144)
    assert (backbone.width, backbone.embed_dim, backbone.text_width, backbone.num_layers) == (64, 32, 64, 4)
    assert backbone.context_length == 77 and backbone.text_causal_mask is False and backbone.grad_checkpointing
    assert backbone.causal_mask.shape == (77, 77) and "causal_mask" not in backbone.state_dict()  # not a weight
    assert torch.equal(backbone.causal_mask, open_clip.create_model("tiny-vit", pretrained=None).attn_mask)
    assert CLIPBackbone("tiny-vit", "none").image_size == 64  # None: the native size


def test_errors_name_the_way_out() -> None:
    names = ("['ViT-B-16', 'ViT-B-16-plus-240', 'ViT-B-16-quickgelu', 'ViT-B-32', 'ViT-L-14', 'ViT-L-14-336', "
             "'ViT-L-14-336-quickgelu', 'ViT-L-14-quickgelu', 'small-vit', 'tiny-vit']")
    with pytest.raises(ValueError) as error:
        CLIPBackbone("ViT-Q-99", "none")
    assert str(error.value) == f"Unknown backbone 'ViT-Q-99'. Valid open_clip names include {names} " \
                               "(all: open_clip.list_models())."
    with pytest.raises(ValueError) as error:
        CLIPBackbone("tiny-vit", "none", pos_embed_mode="nearest")
    assert str(error.value) == "pos_embed_mode must be 'bicubic_once' or 'bilinear_per_forward', got 'nearest'"
    for size, valid in ((70, "[48, 56, 64, 72, 80]"), (12, "[8, 16, 24]")):
        with pytest.raises(ValueError) as error:
            CLIPBackbone("tiny-vit", "none", image_size=size)
        assert str(error.value) == (f"image_size {size} is not a multiple of tiny-vit's patch size 8; "
                                    f"nearby valid sizes: {valid}")


def test_rehearsal_builds_the_twin_with_the_requested_activation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSUITE_REHEARSAL", "1")
    twin = CLIPBackbone("ViT-L-14-336", "openai")  # OpenAI weights requested: QuickGELU although the twin is random
    assert twin.describe() == _describe(backbone="rehearse-L-14-336", image_size=336, shrunk_from="ViT-L-14-336")
    already = CLIPBackbone("rehearse-B-16-plus-240", "none")
    assert already.describe() == _describe(backbone="rehearse-B-16-plus-240", image_size=240, activation="GELU")


def test_the_weights_cache_folder_reaches_the_weight_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from src.backbone import clip

    asked = []
    monkeypatch.setattr(clip, "resolve_checkpoint", lambda *args: asked.append(args))  # None: random weights
    CLIPBackbone("tiny-vit", "none", weights_cache_dir=str(tmp_path))
    CLIPBackbone("tiny-vit", "none")
    assert asked == [("tiny-vit", "none", str(tmp_path)), ("tiny-vit", "none", None)]
