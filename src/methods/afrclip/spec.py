"""Registry entry of AFR-CLIP (see ``src/registry.py``)."""

from src.registry import BenchSetting, Learning, MethodSpec

SPEC = MethodSpec(
    name="afr", display_name="AFR-CLIP", lightning_class="src.methods.afrclip.AFRCLIP",
    learning=Learning.ZERO_SHOT_TRAINED, rank=1, compared={"zero-shot": 2},
    bench_paper=BenchSetting("afr", "ViT-L-14-336-quickgelu", 518, (6, 12, 18, 24), 4,
                             extra={"sp_cnn_pretrained": "none"}),
    bench_quick=BenchSetting("afr", "tiny-vit", 64, (2, 3, 4), 2,
                             extra={"sp_cnn_pretrained": "none", "sp_source": "resnet18"}),
    time_target=1.3,
)
