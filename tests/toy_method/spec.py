"""Registry entry of the toy method; its YAMLs and reference CSV live beside it in ``experiments/``."""

from pathlib import Path

from src.registry import BenchSetting, Learning, MethodSpec

SPEC = MethodSpec(
    name="toy", display_name="Toy", lightning_class="tests.toy_method.model.ToyMethod",
    learning=Learning.ZERO_SHOT_TRAINED, rank=50, compared={"zero-shot": 9},
    bench_paper=BenchSetting("toy", "tiny-vit", 64, (4,), 2),
    bench_quick=BenchSetting("toy", "tiny-vit", 64, (4,), 2),
    time_target=2.0, experiments=Path(__file__).resolve().parent / "experiments",
)
