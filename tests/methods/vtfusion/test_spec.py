"""VTFusion's registry hooks for `make bench`: the text and prototypes a timed forward needs, and the
DAS fields of a timed training batch (a stand-in model records the calls)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from src.methods.vtfusion.spec import BENCH_SHOTS, SPEC
from src.registry import BenchSetting


def test_prepare_embeds_the_object_text_and_sets_prototypes_from_seeded_shots() -> None:
    calls: dict = {}
    model = SimpleNamespace(set_text=lambda noun: calls.__setitem__("text", noun),
                            set_prototypes=lambda shots: calls.__setitem__("shots", shots))
    setting = BenchSetting("vtfusion", "tiny-vit", 16, (1, 2), 2)
    SPEC.bench_prepare(SimpleNamespace(model=model), setting)
    expected = torch.randn(BENCH_SHOTS, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert calls["text"] == "object" and BENCH_SHOTS == 4
    assert torch.equal(calls["shots"], expected)


def test_batch_gets_a_noisy_copy_inside_the_mask_and_that_mask() -> None:
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[1, :, 1:3, 1:3] = 1
    batch = SimpleNamespace(image=images.clone(), mask=mask.clone())
    SPEC.bench_batch(batch, torch.Generator().manual_seed(5))
    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(batch.synthetic_image, images + mask * noise)
    assert torch.equal(batch.synthetic_mask, mask) and torch.equal(batch.image, images)
    assert not torch.equal(batch.synthetic_image[1], images[1]) and torch.equal(batch.synthetic_image[0], images[0])
