"""AFR-CLIP's wiring by value: run description, focal exponent, mask layouts, MPFA at the grid's edge,
clear errors, and where the SP CNN's cached ImageNet weights are looked up."""

from __future__ import annotations

import os
import re

import pytest
import torch
import torchvision.models as tvm

from src.methods.afrclip import sp as sp_module
from src.methods.afrclip.adapters import StageAdapters
from src.methods.afrclip.losses import afr_losses
from src.methods.afrclip.mpfa import MPFA

from .conftest import build, build_valued


def test_run_description_with_a_loaded_cnn_and_a_random_clip(cnn_file) -> None:  # noqa: ANN001
    meta = build_valued({"layers": [2, 3, 4]}, cnn_file).results_meta()
    assert (meta["sp_active"], meta["sp_source"], meta["sp_cnn"]) == (True, "resnet18", "resnet18")
    assert meta["sp_cnn_weights"] == str(cnn_file) and meta["sp_cnn_random_init"] is False
    assert meta["clip_random_init"] is True and meta["random_init"] is True  # either random part makes it random


def test_run_description_with_a_random_cnn_and_loaded_clip() -> None:
    model = build()
    model.model.backbone.random_init = False  # as if CLIP's weights had loaded: the random CNN alone decides
    meta = model.results_meta()
    assert meta["sp_cnn"] == "resnet18" and meta["sp_cnn_weights"] is None and meta["sp_cnn_random_init"] is True
    assert meta["clip_random_init"] is False and meta["random_init"] is True


def test_run_description_without_a_cnn() -> None:
    assert build(use_sp=False).model.describe() == {"sp_active": False, "sp_source": "resnet18"}


def test_training_losses_use_the_configured_focal_exponent(batch32) -> None:  # noqa: ANN001
    model = build(focal_gamma=3.5)
    model.train()
    terms = model.training_losses(batch32)
    out = model(batch32)
    grid = model.model.backbone.grid_size
    want = afr_losses(out.stage_logits, grid, batch32.mask, batch32.label, gamma=3.5)["focal"]
    default = afr_losses(out.stage_logits, grid, batch32.mask, batch32.label)["focal"]
    assert float(terms["focal"].detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    assert abs(float(want.detach()) - float(default.detach())) > 1e-3 * abs(float(default.detach()))


def test_a_mask_without_its_channel_axis_gives_the_same_losses() -> None:
    g = torch.Generator().manual_seed(5)
    logits = [2 * torch.randn(2, 17, 2, generator=g) for _ in range(2)]
    mask = torch.zeros(2, 1, 12, 12)
    mask[1, 0, 3:9, 2:7] = 1
    label = torch.tensor([0, 1])
    four, three = afr_losses(logits, (4, 4), mask, label), afr_losses(logits, (4, 4), mask[:, 0], label)
    for name, value in four.items():
        assert float(three[name]) == pytest.approx(float(value), rel=1e-6), name


def _box_mean_float64(tokens: torch.Tensor, grid: tuple[int, int], kernel: int) -> torch.Tensor:
    """Each patch replaced by the mean of the patches within kernel // 2 rows and columns (the grid clips)."""
    gh, gw = grid
    r = kernel // 2
    cells = tokens[:, 1:].double().reshape(tokens.shape[0], gh, gw, -1)
    out = torch.empty_like(cells)
    for i in range(gh):
        for j in range(gw):
            out[:, i, j] = cells[:, max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean(dim=(1, 2))
    return torch.cat([tokens[:, :1].double(), out.reshape(tokens.shape[0], gh * gw, -1)], dim=1)


@pytest.mark.parametrize("kernel", [3, 5, 7, 9])
def test_mpfa_with_a_kernel_wider_than_the_grid(kernel: int) -> None:
    tokens = torch.randn(2, 1 + 2 * 3, 5, generator=torch.Generator().manual_seed(kernel))
    mpfa = MPFA(kernel, (2, 3))
    expected = _box_mean_float64(tokens, (2, 3), kernel)
    with torch.inference_mode():
        fast = mpfa(tokens)
    torch.testing.assert_close(fast.double(), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(mpfa(tokens).double(), expected, atol=1e-6, rtol=0)  # training's avg_pool2d form


def test_errors_name_the_counts(batch32) -> None:  # noqa: ANN001
    model = build()
    with pytest.raises(ValueError, match=r"^Got 2 images but 3 categories$"):
        model.model(batch32.image[:2], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"^MPFA expects 1 \+ 2x3 = 7 tokens \(CLS first\), got 8$"):
        MPFA(3, (2, 3))(torch.zeros(1, 8, 4))
    with pytest.raises(ValueError, match=r"^StageAdapters built for 2 stages got 3 taps$"):
        StageAdapters(2, 4, 6)([torch.zeros(1, 5, 4)] * 3)


@pytest.mark.parametrize(("arch", "enum_name"), [("resnet18", "ResNet18_Weights"),
                                                 ("wide_resnet50_2", "Wide_ResNet50_2_Weights")])
def test_cached_imagenet_files_are_torchvisions_names_default_first(arch: str, enum_name: str, tmp_path,  # noqa: ANN001
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    enum = getattr(tvm, enum_name)
    names = [os.path.basename(enum.DEFAULT.url)] + sorted(
        os.path.basename(w.url) for w in enum if w is not enum.DEFAULT)
    files = sp_module._cached_imagenet_files(arch)
    assert [f.parent for f in files] == [tmp_path / "checkpoints"] * len(names)
    assert [files[0].name, *sorted(f.name for f in files[1:])] == names
    assert len({f.name for f in files}) == len(files) == len(list(enum))
    assert all(re.fullmatch(r"[a-z0-9_]+-[0-9a-f]+\.pth", f.name) for f in files)



def test_self_prompting_errors_name_what_is_missing() -> None:
    from src.methods.afrclip.sp import SelfPrompting

    with pytest.raises(ValueError, match=r"^SelfPrompting with P_v needs the source feature of each image$"):
        SelfPrompting(8, num_prompts=2, source_dim=4)(None, 3)
    with pytest.raises(ValueError, match=r"^sp_num_prompts must be >= 1, got 0$"):
        SelfPrompting(8, num_prompts=0, source_dim=4)
    assert SelfPrompting(8, num_prompts=2, source_dim=4, use_pv=False)(None, 3).shape == (3, 2, 8)


def test_cmfr_describes_its_gate() -> None:
    from src.methods.afrclip.cmfr import CMFR

    assert "dim=4, gate='scalar'" in repr(CMFR(4, gate="scalar")) and "gate='vector'" in repr(CMFR(6))
