"""Registry entry of VTFusion (see ``src/registry.py``)."""

from typing import Any

from src.registry import BenchSetting, Learning, MethodSpec

#: The prototypes come from k normal shots (the paper's largest k); not part of the timing.
BENCH_SHOTS = 4


def _prepare(module: Any, setting: BenchSetting) -> None:
    import torch

    size = setting.image_size
    shots = torch.randn(BENCH_SHOTS, 3, size, size, generator=torch.Generator().manual_seed(0))
    module.model.set_text("object")
    module.model.set_prototypes(shots)


def _batch(batch: Any, generator: Any) -> None:
    """DAS output: a perturbed copy of the images and its mask."""
    import torch

    images, mask = batch.image, batch.mask
    batch.synthetic_image = images + mask * torch.randn(*images.shape, generator=generator)
    batch.synthetic_mask = mask


SPEC = MethodSpec(
    name="vtfusion", display_name="VTFusion", lightning_class="src.methods.vtfusion.VTFusion",
    learning=Learning.FEW_SHOT_PER_CATEGORY, rank=3, compared={"k-shot": 0},
    bench_paper=BenchSetting("vtfusion", "ViT-B-16-plus-240", 240, (3, 6, 9, 12), 4),
    bench_quick=BenchSetting("vtfusion", "tiny-vit", 64, (1, 2, 3, 4), 2, extra={"prompt_set": "pair"}),
    time_target=1.3, bench_prepare=_prepare, bench_batch=_batch,
)
