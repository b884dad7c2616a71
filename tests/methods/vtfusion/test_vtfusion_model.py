"""VTFusion end to end on the tiny backbone: shapes, frozen parts, prototypes, switches, overfit."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from src.contracts import Batch
from src.methods.vtfusion import VTFusion, synthesize
from src.methods.vtfusion.ate import text_guided_map
from tests.batches import make_batch

from .helpers import auroc, textured_image, tiny_kwargs, to_tensor

SIZE = 32
STEPS = 30  # optimisation steps of the overfit test


class StubDataModule:
    """What ``prepare_category`` reads from the real AnomalyDataModule."""

    def __init__(self, shots: torch.Tensor, category: str = "metal_nut") -> None:
        self.categories = [category]
        self.paths = [f"/data/{category}/train/good/{i:03d}.png" for i in range(len(shots))]
        self.shots = shots
        self.requested: list[str] = []

    def reference_batch(self, category: str) -> Batch:
        self.requested.append(category)
        return make_batch(self.shots, path=self.paths, category=[category] * len(self.shots))


def shots(k: int, seed: int = 0) -> torch.Tensor:
    return torch.stack([to_tensor(textured_image(SIZE, seed + i)) for i in range(k)])


def synthetic_batch(k: int = 2, seed: int = 0, size: int = SIZE) -> Batch:
    clean = [textured_image(size, seed + i) for i in range(k)]
    edits = [synthesize(img, np.random.default_rng(100 + i), ["misplaced", "noise"], combined_prob=0.0)
             for i, img in enumerate(clean)]
    return make_batch(
        torch.stack([to_tensor(c) for c in clean]),
        synthetic_image=torch.stack([to_tensor(e.image) for e in edits]),
        synthetic_mask=torch.stack([torch.from_numpy(e.mask)[None] for e in edits]),
    )


def prepared(k: int = 2, **overrides) -> tuple[VTFusion, StubDataModule]:
    torch.manual_seed(0)
    module = VTFusion(**tiny_kwargs(**overrides))
    dm = StubDataModule(shots(k))
    module.prepare_category(dm)
    return module, dm


def test_shapes_and_outputs() -> None:
    module, _ = prepared()
    module.eval()
    x = shots(3, seed=5)
    maps = module.model.maps(x)
    assert maps["vision"].shape == (3, 1, 4, 4) and maps["text"].shape == (3, 1, 4, 4)
    assert maps["final"].shape == (3, 1, SIZE, SIZE)
    out = module.evaluation_step(make_batch(x))
    assert out.anomaly_map.shape == (3, SIZE, SIZE) and out.pred_score.shape == (3,)
    torch.testing.assert_close(out.pred_score, maps["final"].flatten(1).amax(1))


def test_prototypes_from_exactly_the_logged_shots_and_frozen_by_training() -> None:
    module, dm = prepared(k=2)
    assert dm.requested == ["metal_nut"] and module.shot_paths == dm.paths
    expected = module.model.stack(module.model.stage_features(dm.shots)).mean(0)
    torch.testing.assert_close(module.model.prototypes, expected)
    before = module.model.prototypes.clone()
    frozen = {n: p.clone() for n, p in module.model.backbone.named_parameters()}
    optimizer = module.configure_optimizers()
    module.train()
    for _ in range(2):
        optimizer.zero_grad()
        module.training_step(synthetic_batch(), 0).backward()
        optimizer.step()
    assert torch.equal(module.model.prototypes, before)
    assert all(torch.equal(p, frozen[n]) for n, p in module.model.backbone.named_parameters())
    assert not any(p.requires_grad for p in module.model.backbone.parameters())
    # the features moved, so training did happen
    assert not torch.allclose(module.model.stack(module.model.stage_features(dm.shots)).mean(0), before)
    meta = module.results_meta()
    assert meta["shots"] == dm.paths and meta["k_shot"] == 2 and meta["alpha"] == 0.1 and meta["nu"] == 1e-3


def test_k1_training_shot_sits_on_its_prototypes() -> None:
    module, dm = prepared(k=1)
    d = module.model.distances(module.model.stage_features(dm.shots), 1)
    assert d.abs().max() <= 1e-6


def test_text_map_at_init_is_zero_shot_clip_of_pooled_projected_tokens() -> None:
    module, dm = prepared()
    model = module.model
    taps = model.backbone.encode_image_layers(dm.shots, model.layers)
    pooled = []
    for tokens in taps:
        proj = model.backbone.project(tokens[:, 1:]).transpose(1, 2).reshape(2, -1, 4, 4)
        pooled.append(torch.nn.functional.avg_pool2d(proj, 3, 1, 1, count_include_pad=False))
    text = torch.nn.functional.normalize(model.text_embeddings, dim=-1)
    torch.testing.assert_close(model.maps(dm.shots)["text"], text_guided_map(pooled, text), atol=1e-5, rtol=1e-4)


def test_gradients_reach_the_trainable_parts_only() -> None:
    module, _ = prepared()
    module.train()
    module.training_step(synthetic_batch(), 0).backward()
    groups = module.model.parameter_groups()
    assert groups["aie"] and groups["other"]
    assert module.model.text_adapter.fc2.weight.grad.abs().sum() > 0
    assert module.model.adaptors[0].conv.weight.grad.abs().sum() > 0
    assert module.model.segmenter.head[-1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.model.backbone.parameters())
    names = {n for n, p in module.named_parameters() if p.requires_grad}
    assert not any(".backbone." in f".{n}" for n in names)


def test_checkpoint_keeps_prototypes_and_drops_the_backbone() -> None:
    module, dm = prepared()
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    state = checkpoint["state_dict"]
    assert "model.prototypes" in state and "model.text_embeddings" in state
    assert not any(".backbone." in f".{k}" for k in state)
    assert checkpoint["vtfusion"]["shots"] == dm.paths
    torch.manual_seed(0)  # same random backbone: it is rebuilt, not loaded
    fresh = VTFusion(**tiny_kwargs())
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    torch.testing.assert_close(fresh.model.prototypes, module.model.prototypes)
    fresh.eval()
    module.eval()
    torch.testing.assert_close(fresh(make_batch(dm.shots)).anomaly_map, module(make_batch(dm.shots)).anomaly_map)


def test_unprepared_model_says_what_to_do() -> None:
    module = VTFusion(**tiny_kwargs())
    with pytest.raises(RuntimeError, match="prototypes"):
        module(make_batch(shots(1)))


@pytest.mark.parametrize(
    ("switches", "terms"),
    [
        ({}, {"seg", "nfc", "afs"}),
        ({"use_mpf": False}, {"seg", "nfc", "afs"}),
        ({"use_mpf": False, "use_aie": False}, {"seg"}),
        ({"use_ate": False}, {"seg", "nfc", "afs"}),
    ],
)
def test_ablation_switches_change_what_they_name(switches: dict, terms: set) -> None:
    module, _ = prepared(**switches)
    model = module.model
    assert set(module.training_losses(synthetic_batch())) == terms
    assert hasattr(model, "segmenter") == switches.get("use_mpf", True)
    assert (model.adaptors is not None) == switches.get("use_aie", True)
    assert bool(list(model.text_adapter.parameters())) == switches.get("use_ate", True)
    if not switches.get("use_aie", True):
        assert not any(p.requires_grad for p in model.linears.parameters())
        assert "vision" not in model.maps(shots(1))
    if not switches.get("use_mpf", True):
        module.eval()
        maps = model.maps(shots(1))
        expected = maps["text"] / 4
        if "vision" in maps:
            expected = 0.5 * (expected + maps["vision"] / model.vision_scale)
        up = torch.nn.functional.interpolate(expected, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        torch.testing.assert_close(maps["final"], up)


def test_invalid_switch_combinations_are_named() -> None:
    with pytest.raises(ValueError, match="use_mpf=True needs use_aie=True"):
        VTFusion(**tiny_kwargs(use_aie=False))
    with pytest.raises(ValueError, match="vision_topk"):
        VTFusion(**tiny_kwargs(vision_topk=99))


def test_vision_topk_and_attention_matrix_options() -> None:
    module, dm = prepared(vision_topk=3, sam_output="attention_matrix")
    module.eval()
    assert module.model.maps(dm.shots)["vision"].shape == (2, 3, 4, 4)
    assert module.model.fusion.body[0].in_channels == 2 * 16


def test_prepare_category_needs_one_category() -> None:
    module = VTFusion(**tiny_kwargs())
    with pytest.raises(ValueError, match="one model per category"):
        module.prepare_category(SimpleNamespace(categories=["a", "b"]))


def test_overfit_drives_seg_loss_down_and_pixel_auroc_up() -> None:
    torch.manual_seed(0)
    module = VTFusion(**tiny_kwargs(image_size=64, seg_width=16, seg_upsample=2, lr_other=3e-3, lr_aie=3e-3))
    batch = synthetic_batch(k=2, size=64)
    module.prepare_category(StubDataModule(batch.image))
    optimizer = module.configure_optimizers()
    synthetic_only = torch.ones(2, dtype=torch.bool)
    module.train()
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        terms = module.model.losses(batch.image, batch.synthetic_image, batch.synthetic_mask, synthetic_only)
        losses.append(float(terms["seg"].detach()))
        (module.hparams.lambda_seg * terms["seg"] + (terms["nfc"] + terms["afs"]) / module.hparams.nu).backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        maps = module(make_batch(batch.synthetic_image)).anomaly_map
    score = auroc(maps.numpy(), batch.synthetic_mask[:, 0].numpy())
    print(f"L_SEG {losses[0]:.4f} -> {losses[-1]:.4f}, pixel AUROC {score:.4f}")
    # Measured: L_SEG 0.155 -> 0.046, AUROC 0.976. The bounds are kept wide (3x and 0.08 below what
    # is measured) so the test asserts learning happens, not its exact amount; the exact computation
    # is pinned by test_values_model.py and test_values_losses.py.
    assert losses[-1] < 0.5 * losses[0], losses
    assert score >= 0.90, score


def test_heads_at_paper_size() -> None:
    """ViT-B-16-plus-240 at 240 px: 4 taps of (B, 225, 896) -> F^v (B, 225, 2560) -> M^f (B, 1, 240, 240).

    The heads are built at the paper's widths around random tokens (the 208 M-parameter backbone
    itself is exercised by ``python -m src.methods.vtfusion.params``)."""
    from src.methods.vtfusion.aie import FeatureAdaptor, StageLinear, prototype_distances
    from src.methods.vtfusion.mpf import FusionBlock, SegmentationNet

    torch.manual_seed(0)
    ln, proj = torch.nn.LayerNorm(896), torch.randn(896, 640) * 0.03
    tokens = [torch.randn(1, 225, 896) for _ in range(4)]
    stages = [FeatureAdaptor(640)(StageLinear(ln, proj)(t).transpose(1, 2).reshape(1, 640, 15, 15)) for t in tokens]
    stacked = torch.cat(stages, 1).flatten(2).transpose(1, 2)
    assert stacked.shape == (1, 225, 2560)
    vision = prototype_distances(stacked, stacked[0]).transpose(1, 2).reshape(1, 1, 15, 15)
    assert vision.abs().max() == 0
    text = text_guided_map(stages, torch.nn.functional.normalize(torch.randn(2, 640), dim=-1))
    assert text.shape == (1, 1, 15, 15) and 0 <= text.min() and text.max() <= 4
    fusion = FusionBlock(1, 1, 32).eval()
    fused = fusion(vision, text)
    out = SegmentationNet(3, 128).eval()(torch.cat([vision, text, fused], 1), (240, 240))
    assert out.shape == (1, 1, 240, 240)


def test_resumed_fit_keeps_the_checkpoint_prototypes_and_m_v() -> None:
    """Prototypes/m_v come from the initial weights; a resume (trained weights) must not rebuild them."""
    module, dm = prepared()
    before = (module.model.prototypes.clone(), module.model.vision_scale.clone())
    with torch.no_grad():  # stands in for training: every trainable weight moves
        for p in module.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    rebuilt_from_trained = prepared()[0]
    rebuilt_from_trained.load_state_dict(module.state_dict())
    rebuilt_from_trained.prepare_category(dm)
    assert (rebuilt_from_trained.model.prototypes - before[0]).abs().max() > 1e-3  # what a rebuild would do
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    torch.manual_seed(0)
    fresh = VTFusion(**tiny_kwargs())
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    fresh._trainer = SimpleNamespace(datamodule=dm)
    fresh.on_fit_start()
    assert torch.equal(fresh.model.prototypes, before[0]) and torch.equal(fresh.model.vision_scale, before[1])
    assert dm.requested == ["metal_nut", "metal_nut"]  # prepared() and the rebuild above; not the resume
    other = StubDataModule(dm.shots, category="screw")
    fresh._trainer = SimpleNamespace(datamodule=other)
    with pytest.raises(ValueError, match="belong to category 'metal_nut' but the datamodule selects \\['screw'\\]"):
        fresh.on_fit_start()
