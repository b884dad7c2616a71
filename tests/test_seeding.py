"""Per-module initial weights: ablation rows share the starting weights of every module they share."""

from __future__ import annotations

import hashlib
import warnings

import pytest
import torch

from src.methods.afrclip import AFRCLIP
from src.methods.fbclip import FBCLIP
from src.seeding import derived_seed, module_seed

AFR_TINY = {"backbone": "tiny-vit", "pretrained": "none", "image_size": 32, "layers": [2, 3, 4],
            "sp_source": "resnet18", "sp_cnn_pretrained": "none"}
FB_TINY = {"backbone": "tiny-vit", "pretrained": "none", "image_size": 32, "layers": [1, 2, 4]}


def _build(cls: type, seed: int = 0, **kwargs) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**kwargs).state_dict()


def _shared_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names present in both with the same shape whose values differ."""
    return [k for k in a if k in b and a[k].shape == b[k].shape and not torch.equal(a[k], b[k])]


@pytest.mark.parametrize("switch", [{"use_sp": False}, {"sp_use_pv": False}, {"sp_use_pl": False},
                                    {"use_cmfr": False}])
def test_afr_switch_keeps_every_shared_initial_weight(switch: dict) -> None:
    full = _build(AFRCLIP, **AFR_TINY)
    row = _build(AFRCLIP, **AFR_TINY, **switch)
    assert _shared_equal(full, row) == []
    assert any(k.startswith("model.stage_adapters.") for k in row) and any(k.startswith("model.cmfr.") for k in full)
    assert set(full) != set(row)  # the switch did remove something


@pytest.mark.parametrize("switch", [{"deep_prompt_depth": 3}, {"text_strategies": ["eot"]}, {"n_ctx": 4}])
def test_fb_switch_keeps_every_shared_initial_weight(switch: dict) -> None:
    base = _build(FBCLIP, **FB_TINY)
    row = _build(FBCLIP, **FB_TINY, **switch)
    assert _shared_equal(base, row) == []
    assert any(k.startswith("model.fb_attention.") for k in row)


def test_the_run_seed_still_decides_the_weights() -> None:
    a, b = _build(FBCLIP, 0, **FB_TINY), _build(FBCLIP, 1, **FB_TINY)
    assert not torch.equal(a["model.fb_attention.fg.to_q.weight"], b["model.fb_attention.fg.to_q.weight"])
    again = _build(FBCLIP, 0, **FB_TINY)
    assert all(torch.equal(a[k], again[k]) for k in a)


def test_module_seed_neither_reads_nor_advances_the_global_stream() -> None:
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    with module_seed("x") as seed:
        inside = torch.rand(4)
    assert torch.equal(torch.rand(4), expected)
    assert seed == derived_seed("x", 3)
    assert torch.equal(inside, torch.rand(4, generator=torch.Generator().manual_seed(seed)))
    assert len({derived_seed("x", 3), derived_seed("y", 3), derived_seed("x", 4)}) == 3
    # sha256 of "3:x", first 8 bytes little-endian, top bit cleared
    assert derived_seed("x", 3) == int.from_bytes(hashlib.sha256(b"3:x").digest()[:8], "little") & (2**63 - 1)


@pytest.mark.parametrize("switch", [{"use_mpf": False}, {"use_aie": False, "use_mpf": False}, {"use_ate": False}])
def test_vtfusion_switch_keeps_every_shared_initial_weight(switch: dict) -> None:
    from src.methods.vtfusion import VTFusion
    from tests.methods.vtfusion.helpers import tiny_kwargs

    full = _build(VTFusion, **tiny_kwargs())
    row = _build(VTFusion, **tiny_kwargs(**switch))
    assert _shared_equal(full, row) == []
    assert any(k.startswith("model.text_adapter.") for k in full) and any(k.startswith("model.linears.") for k in row)
    assert set(full) != set(row) or switch == {"use_ate": False}  # use_ate=False keeps the adapter, frozen
