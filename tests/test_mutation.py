"""``make mutate``: package scoping, the score, and the shim that lets mutmut mutate a package named ``src``."""

from __future__ import annotations

import glob
import importlib.util
from pathlib import Path

import pytest

from tests.mutation.__main__ import REPO, summarise
from tests.mutation.packages import PACKAGES

STATS = {"killed": 50, "timeout": 2, "survived": 10, "no_tests": 6, "suspicious": 2, "skipped": 3, "total": 73}


def test_score_counts_timeouts_as_caught_and_untested_as_missed() -> None:
    result = summarise("x", STATS, ["a"], 12.0)
    assert result["score"] == pytest.approx(round(100 * 52 / 70, 1))
    assert result["survivors"] == ["a"]
    assert summarise("x", dict.fromkeys(STATS, 0), [], 0.0)["score"] is None


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_every_package_names_existing_code_and_its_mirrored_tests(name: str) -> None:
    package = PACKAGES[name]
    mutated = {f for pattern in package.files for f in glob.glob(str(REPO / pattern)) if f.endswith(".py")}
    assert mutated, f"{name}: {package.files} match no file"
    assert all((REPO / skip).is_file() for skip in package.skip), package.skip
    for folder in package.tests:
        assert (REPO / folder).is_dir(), folder
        assert Path(folder).parts[1:] == Path(package.files[0]).parent.parts[1:], "tests mirror the package"
    assert package.pytest_args()[-2:] == ["-m", "not ddp and not slow"]


def test_shim_maps_mutant_names_onto_the_src_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from mutmut import stats
    from mutmut.mutation import trampoline

    recorded: list[tuple[str, str | None]] = []
    monkeypatch.setattr(stats, "record_trampoline_hit", lambda name, caller=None: recorded.append((name, caller)))
    monkeypatch.setattr(trampoline, "get_mutant_under_test", lambda: "metrics.aupro.x_f__mutmut_3")
    monkeypatch.setattr(trampoline, "record_trampoline_hit", stats.record_trampoline_hit)
    monkeypatch.setenv("ADSUITE_MUTATE", "1")
    spec = importlib.util.spec_from_file_location("adsuite_mutation_shim", REPO / "tests/mutation/sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))

    assert trampoline.get_mutant_under_test() == "src.metrics.aupro.x_f__mutmut_3"
    trampoline.record_trampoline_hit("src.metrics.aupro.x_f", caller="src.metrics.curves.x_g")
    assert recorded == [("metrics.aupro.x_f", "metrics.curves.x_g")]
    monkeypatch.setattr(trampoline, "get_mutant_under_test", lambda: "stats")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert trampoline.get_mutant_under_test() == "stats"
