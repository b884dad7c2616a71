"""The method registry, and the one aggregation rule the launcher and the tables share."""

from __future__ import annotations

import math
import statistics
import sys
import types

import pytest

from src import registry
from src.aggregate import category_mean, seed_stats
from src.launch.compose import launcher_overrides
from src.launch.options import parse_args, validate
from src.registry import Learning, MethodSpec
from src.tables.build import mean_std


def test_the_suite_methods_are_discovered_with_what_they_declare() -> None:
    specs = registry.methods()
    assert tuple(specs)[:5] == ("clip", "afr", "fb", "vtfusion", "linear")
    learning = {n: specs[n].learning for n in ("clip", "afr", "fb", "vtfusion", "linear")}
    assert learning == {"clip": Learning.TRAINING_FREE, "afr": Learning.ZERO_SHOT_TRAINED,
                        "fb": Learning.ZERO_SHOT_TRAINED, "vtfusion": Learning.FEW_SHOT_PER_CATEGORY,
                        "linear": Learning.ZERO_SHOT_TRAINED}
    assert registry.compared("zero-shot")[:4] == ("clip", "linear", "afr", "fb")
    assert registry.compared("k-shot")[:2] == ("vtfusion", "clip")
    assert specs["vtfusion"].per_category and not specs["afr"].per_category
    for spec in specs.values():  # the class path names a real Lightning module with the same method name
        assert spec.lightning_module().method_name == spec.name


@pytest.mark.parametrize(("method", "k", "trains", "no_aux"), [
    ("clip", None, False, True), ("clip", 1, False, False), ("afr", None, True, False), ("afr", 2, False, False),
    ("vtfusion", None, False, False),
])
def test_learning_type_decides_training_and_aux(method: str, k: int | None, trains: bool, no_aux: bool) -> None:
    spec = registry.get(method)
    assert (spec.trains_zero_shot(k), spec.reads_no_aux(k)) == (trains, no_aux)


def test_k_shot_override_is_the_methods_own() -> None:
    clip = parse_args(["--method", "clip", "--k", "1"])
    validate(clip)
    assert "--model.init_args.few_shot=true" in launcher_overrides(clip, {}, None)
    afr = parse_args(["--method", "afr", "--k", "1"])
    validate(afr)
    assert not any("few_shot" in o for o in launcher_overrides(afr, {}, None))


def _module(monkeypatch: pytest.MonkeyPatch, name: str, spec: object) -> str:
    module = types.ModuleType(name)
    module.SPEC = spec  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, name, module)
    return name


def test_plugin_module_registers_and_bad_ones_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = MethodSpec("extra", "Extra", "src.methods.clip.CLIPBaseline", Learning.TRAINING_FREE, rank=7,
                       compared={"zero-shot": 1})
    monkeypatch.setenv(registry.EXTRA_MODULES_ENV, _module(monkeypatch, "plugin_ok", extra))
    assert registry.names()[-1] == "extra" and registry.compared("zero-shot")[:2] == ("clip", "extra")
    twice = MethodSpec("afr", "AFR again", "x.Y", Learning.TRAINING_FREE)
    monkeypatch.setenv(registry.EXTRA_MODULES_ENV, _module(monkeypatch, "plugin_twice", twice))
    with pytest.raises(registry.RegistryError, match="plugin_twice: method 'afr' is registered twice"):
        registry.methods()
    monkeypatch.setenv(registry.EXTRA_MODULES_ENV, _module(monkeypatch, "plugin_none", None))
    with pytest.raises(registry.RegistryError, match="plugin_none: defines no SPEC"):
        registry.methods()
    monkeypatch.delenv(registry.EXTRA_MODULES_ENV)
    with pytest.raises(registry.RegistryError, match="METHOD='nope' is not a method; valid: clip, afr"):
        registry.get("nope")


def test_category_mean_skips_missing_values_and_is_none_when_empty() -> None:
    categories = {"a": {"image_auroc": 0.9, "pixel_auroc": None, "pixel_ap": math.nan},
                  "b": {"image_auroc": 0.6, "pixel_auroc": 0.7, "pixel_ap": math.nan},
                  "c": {"image_auroc": 0.3}}
    mean, counts = category_mean(categories)
    assert mean["image_auroc"] == pytest.approx((0.9 + 0.6 + 0.3) / 3, abs=1e-15) and counts["image_auroc"] == 3
    assert mean["pixel_auroc"] == 0.7 and counts["pixel_auroc"] == 1
    assert mean["pixel_ap"] is None and counts["pixel_ap"] == 0  # NaN everywhere: no mean, not NaN
    assert mean["pixel_aupro"] is None and counts["pixel_aupro"] == 0


def test_seed_statistics_one_rule_for_launcher_and_tables() -> None:
    values = [0.81, 0.79, 0.86]
    mean = sum(values) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)  # sample std, n - 1
    assert seed_stats(values) == pytest.approx((mean, std), abs=1e-15)
    assert seed_stats([0.5, None, math.nan]) == (0.5, None)  # one value: std undefined
    assert seed_stats([None]) == (None, None)
    assert mean_std(values) == (statistics.fmean(values), pytest.approx(std, abs=1e-15), "82.0 ± 3.6")
    assert mean_std([0.5]) == (0.5, None, "50.0")
