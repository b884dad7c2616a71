"""How ``VTFusionModel`` builds its trainable blocks: each from its own seed label (so an ablation
row starts every block it shares from the same weights, whatever was built before), the configured
adaptor and linear init reaching them, and the blocks' own defaults and errors."""

from __future__ import annotations

import inspect

import pytest
import torch

from src.methods.vtfusion.aie import FeatureAdaptor, StageLinear
from src.methods.vtfusion.ate import TextAdapter
from src.methods.vtfusion.mpf import FusionBlock, SegmentationNet
from src.methods.vtfusion.torch_model import VTFusionModel
from src.seeding import module_seed

from .helpers import tiny_kwargs


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_each_block_comes_from_its_seed_label_whatever_was_drawn_before() -> None:
    kwargs = tiny_kwargs(adaptor="conv3x3", linear_init="random", vision_topk=2)
    torch.manual_seed(1)  # the run's seed: each block's seed is derived from it and the block's label
    model = VTFusionModel(**kwargs)
    torch.randn(5)  # the global stream moves on; the blocks must not
    again = VTFusionModel(**kwargs)
    bb = model.backbone
    dim, proj, n = bb.embed_dim, bb.visual.proj, len(model.layers)
    with module_seed("vtf.linears"):
        linears = torch.nn.ModuleList(StageLinear(bb.visual.ln_post, proj, "random") for _ in range(n))
    with module_seed("vtf.adaptors"):
        adaptors = torch.nn.ModuleList(FeatureAdaptor(dim, "conv3x3") for _ in range(n))
    with module_seed("vtf.text_adapter"):
        text = TextAdapter(dim, enabled=True)
    with module_seed("vtf.fusion"):
        fusion = FusionBlock(2, 1, 8, "attended", bb.grid_size)
    with module_seed("vtf.segmenter"):
        segmenter = SegmentationNet(2 + 2, 16, (60, 30, 15, 8), 4)
    for name, expected in (("linears", linears), ("adaptors", adaptors), ("text_adapter", text),
                           ("fusion", fusion), ("segmenter", segmenter)):
        assert _same(getattr(model, name), expected) and _same(getattr(again, name), expected), name
    assert {a.kind for a in model.adaptors} == {"conv3x3"}


def test_block_defaults_are_the_models_and_bad_choices_are_named() -> None:
    model = {k: p.default for k, p in inspect.signature(VTFusionModel).parameters.items()}
    fusion = {k: p.default for k, p in inspect.signature(FusionBlock).parameters.items()}
    seg = {k: p.default for k, p in inspect.signature(SegmentationNet).parameters.items()}
    assert (fusion["dim"], fusion["sam_output"]) == (model["fusion_dim"], model["sam_output"]) == (32, "attended")
    assert (seg["upsample"], seg["bins"]) == (model["seg_upsample"], model["seg_bins"]) == (4, (60, 30, 15, 8))
    ln, proj = torch.nn.LayerNorm(4), torch.randn(4, 3)
    assert not torch.equal(StageLinear(ln, proj, "random").linear.weight, proj.t())
    assert torch.equal(StageLinear(ln, proj, "clip").linear.weight, proj.t())
    with pytest.raises(ValueError, match=r"^linear_init must be 'clip' or 'random', got 'xavier'$"):
        StageLinear(ln, proj, "xavier")
    with pytest.raises(ValueError, match=r"^sam_output must be one of \['attended', 'attention_matrix'\], got 'x'$"):
        FusionBlock(1, 1, 8, "x", (4, 4))


def test_defaults_reach_the_backbone_and_the_blocks_when_nothing_is_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Called without arguments (the defaults themselves run, not a signature read); the paper's
    # ViT-B-16-plus-240 is stood in for by the tiny backbone, whose layer check is skipped.
    from src.backbone import CLIPBackbone
    from src.methods.vtfusion import torch_model as tm

    tiny = CLIPBackbone("tiny-vit", "none", image_size=32)
    tiny._check_layers = lambda layers: None
    calls = []
    monkeypatch.setattr(tm, "CLIPBackbone", lambda *args, **kwargs: calls.append((args, kwargs)) or tiny)
    model = tm.VTFusionModel()
    assert calls == [(("ViT-B-16-plus-240", "laion400m_e31"), {"image_size": 240, "pos_embed_mode": "bicubic_once"})]
    assert float(model.r) == pytest.approx(1e-5) and not model.r.requires_grad and model.layers == [3, 6, 9, 12]
    assert model.segmenter.upsample == 4 and model.fusion.lift_v[0].out_channels == 32
    assert model.prepared.dtype == torch.bool and not model.prepared.any()
    assert FusionBlock(1, 1).lift_v[0].out_channels == 32 and SegmentationNet(3, 8).upsample == 4
