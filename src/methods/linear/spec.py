"""Registry entry of the linear probe (see ``src/registry.py``)."""

from src.registry import BenchSetting, Learning, MethodSpec

SPEC = MethodSpec(
    name="linear", display_name="Linear probe", lightning_class="src.methods.linear.LinearProbe",
    learning=Learning.ZERO_SHOT_TRAINED, rank=4, compared={"zero-shot": 1},
    bench_paper=BenchSetting("linear", "ViT-L-14-336-quickgelu", 518, (6, 12, 18, 24), 8),
    bench_quick=BenchSetting("linear", "tiny-vit", 64, (2, 3, 4), 2),
    time_target=1.1,  # S linears on the taps
)
