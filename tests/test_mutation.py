"""``make mutate``: package scoping, the score, and the shim that lets mutmut mutate a package named ``src``."""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from lightning.pytorch.core.mixins import HyperparametersMixin

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
    for name in ("load_stats", "save_stats"):  # the shim wraps them: restore the originals afterwards
        monkeypatch.setattr(stats, name, getattr(stats, name))
    monkeypatch.setenv("ADSUITE_MUTATE", "1")
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)  # the shim sets it: restored afterwards
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # the shim adds an import hook: drop it afterwards
    spec = importlib.util.spec_from_file_location("adsuite_mutation_shim", REPO / "tests/mutation/sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))

    assert trampoline.get_mutant_under_test() == "src.metrics.aupro.x_f__mutmut_3"
    trampoline.record_trampoline_hit("src.metrics.aupro.x_f", caller="src.metrics.curves.x_g")
    assert recorded == [("metrics.aupro.x_f", "metrics.curves.x_g")]
    monkeypatch.setattr(trampoline, "get_mutant_under_test", lambda: "stats")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert trampoline.get_mutant_under_test() == "stats"


def _load_shim(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN202 - the shim module
    monkeypatch.delenv("PYTEST_PLUGINS", raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    spec = importlib.util.spec_from_file_location("adsuite_mutation_shim", REPO / "tests/mutation/sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _MutatedConstructor(HyperparametersMixin):
    """Laid out as mutmut lays out a mutated constructor.

    ``__init__`` calls a body named ``xǁClassǁ__init____mutmut_orig``.
    """

    def _body(self, alpha: int = 1, beta: str = "b") -> None:
        super().__init__()
        self.save_hyperparameters()

    _body.__code__ = _body.__code__.replace(co_name="xǁ_MutatedConstructorǁ__init____mutmut_orig")

    def __init__(self, alpha: int = 1, beta: str = "b") -> None:
        self._body(alpha, beta)


def test_shim_lets_save_hyperparameters_read_a_mutated_constructor(monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning.pytorch.utilities import parsing

    assert dict(_MutatedConstructor(3, "x").hparams) == {}, "Lightning alone reads no arguments from the renamed body"
    monkeypatch.setattr(parsing, "_get_init_args", parsing._get_init_args)  # restored after the test
    _load_shim(monkeypatch)._accept_mutmut_constructors(parsing)
    assert dict(_MutatedConstructor(3, "x").hparams) == {"alpha": 3, "beta": "x"}
    assert dict(_MutatedConstructor().hparams) == {"alpha": 1, "beta": "b"}


def test_shim_patches_lightning_only_when_it_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSUITE_MUTATE", "1")
    shim = _load_shim(monkeypatch)
    hook = next(h for h in sys.meta_path if isinstance(h, shim._PatchAfterImport))
    assert hook.find_spec("lightning.pytorch.utilities") is None
    from lightning.pytorch import utilities

    spec = hook.find_spec("lightning.pytorch.utilities.parsing", utilities.__path__)
    assert spec is not None and spec.name == "lightning.pytorch.utilities.parsing"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._get_init_args.__qualname__.endswith("_accept_mutmut_constructors.<locals>._get_init_args")


def test_shim_widens_each_function_to_the_whole_files_of_its_tests() -> None:
    from tests.mutation.sitecustomize import widen_to_test_files

    a, b, c = "tests/m/test_a.py", "tests/m/test_b.py", "tests/m/test_c.py"
    mapping = {"f": {f"{a}::t1"}, "g": {f"{b}::t3[x]", f"{c}::t5"}, "h": set()}
    everything = [f"{a}::t1", f"{a}::t2", f"{b}::t3[x]", f"{b}::t3[y]", f"{b}::t4", f"{c}::t5", "tests/m/test_d.py::t6"]
    widen_to_test_files(mapping, everything)
    assert mapping == {"f": {f"{a}::t1", f"{a}::t2"},
                       "g": {f"{b}::t3[x]", f"{b}::t3[y]", f"{b}::t4", f"{c}::t5"}, "h": set()}
    widen_to_test_files(mapping, everything)
    assert mapping["f"] == {f"{a}::t1", f"{a}::t2"}, "idempotent"


def test_shim_widens_the_stats_mutmut_loads_and_saves(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mutmut import stats

    for name in ("load_stats", "save_stats"):
        monkeypatch.setattr(stats, name, getattr(stats, name))
    monkeypatch.setenv("ADSUITE_MUTATE", "1")
    _load_shim(monkeypatch)
    state = stats.state()
    monkeypatch.setattr(state, "tests_by_mangled_function_name", {"f": {"tests/x/test_a.py::t1"}})
    monkeypatch.setattr(state, "duration_by_test", {"tests/x/test_a.py::t1": 0.1, "tests/x/test_a.py::t2": 0.2})
    saved = []
    monkeypatch.setattr(stats.json, "dump", lambda data, *_a, **_k: saved.append(data))
    monkeypatch.setattr(stats, "config", lambda: type("C", (), {"config_fingerprint": staticmethod(dict)})())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mutants").mkdir()
    stats.save_stats()
    assert sorted(saved[0]["tests_by_mangled_function_name"]["f"]) == ["tests/x/test_a.py::t1", "tests/x/test_a.py::t2"]


def test_shim_loads_the_order_plugin_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSUITE_MUTATE", "1")
    _load_shim(monkeypatch)
    assert os.environ["PYTEST_PLUGINS"] == "order_plugin"
    monkeypatch.setenv("PYTEST_PLUGINS", "other")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    spec = importlib.util.spec_from_file_location("adsuite_mutation_shim", REPO / "tests/mutation/sitecustomize.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert os.environ["PYTEST_PLUGINS"] == "other,order_plugin"


def _items(*node_ids: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(nodeid=node) for node in node_ids]


def test_order_plugin_puts_value_files_first_then_cheap_files_keeping_each_file_together(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.mutation import order_plugin

    a, v, w, z = "t/test_aie.py", "t/test_values_model.py", "t/test_das_values.py", "t/test_zoo.py"
    nodes = [f"{a}::x", f"{a}::y", f"{v}::p", f"{w}::q", f"{w}::r", f"{z}::s"]
    durations = {f"{a}::x": 1.0, f"{a}::y": 2.5, f"{v}::p": 9.0, f"{w}::q": 0.5, f"{w}::r": 0.25, f"{z}::s": 3.0}
    (tmp_path / "mutmut-stats.json").write_text(json.dumps({"duration_by_test": durations}))
    monkeypatch.chdir(tmp_path)
    assert order_plugin.file_rank(nodes, durations) == {a: (1, 3.5, a), v: (0, 9.0, v), w: (0, 0.75, w), z: (1, 3.0, z)}
    monkeypatch.setenv("MUTANT_UNDER_TEST", "src.methods.vtfusion.aie.x_f__mutmut_1")
    items = _items(*nodes)
    order_plugin.pytest_collection_modifyitems(items)
    assert [i.nodeid for i in items] == [f"{w}::q", f"{w}::r", f"{v}::p", f"{z}::s", f"{a}::x", f"{a}::y"]
    for special in ("stats", "", "fail", "list_all_tests"):  # mutmut's own runs keep pytest's order
        monkeypatch.setenv("MUTANT_UNDER_TEST", special)
        items = _items(*nodes)
        order_plugin.pytest_collection_modifyitems(items)
        assert [i.nodeid for i in items] == nodes


def test_sample_takes_the_mutants_whose_number_ends_in_the_digits() -> None:
    import fnmatch

    from tests.mutation import sample

    names = [f"methods.vtfusion.mpf.x_f__mutmut_{n}" for n in (1, 3, 7, 10, 13, 17, 27, 30, 103)]
    chosen = [n for n in names if sample.in_sample(n, "37")]
    assert [n.rpartition("_")[2] for n in chosen] == ["3", "7", "13", "17", "27", "103"]
    assert [n for n in names if fnmatch.fnmatch(n, sample.pattern("37"))] == chosen, "mutmut selects the same"
    assert sample.parse_digits(" 37 ") == "37"
    for bad in ("", "3a", "33", "-1"):
        with pytest.raises(ValueError, match=r"--sample takes distinct last digits"):
            sample.parse_digits(bad)


def _meta(mutants: Path, codes: dict[str, int | None]) -> None:
    path = mutants / "src" / "m.py.meta"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code_by_key": codes}))


def test_sampled_counts_come_from_the_sampled_records_only(tmp_path: Path) -> None:
    from tests.mutation import sample

    _meta(tmp_path, {"f__mutmut_3": 1, "f__mutmut_7": 0, "f__mutmut_13": 36, "f__mutmut_17": None,
                     "f__mutmut_23": 33, "f__mutmut_27": 3, "f__mutmut_1": 0, "f__mutmut_2": 0, "f__mutmut_33": 99,
                     "f__mutmut_37": 2})  # 2: interrupted, as pending as never started
    status = sample.sampled_status(tmp_path, "37")
    assert "f__mutmut_1" not in status and status["f__mutmut_17"] == "not checked"
    assert sample.counts(status) == {"killed": 2, "timeout": 1, "survived": 1, "no_tests": 1, "suspicious": 1,
                                     "skipped": 0, "total": 8, "not_checked": 2}
    assert summarise("x", sample.counts(status), [], 0.0)["judged"] == 6


def test_a_sampled_run_names_the_pending_mutants_and_scores_the_sample(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.mutation import __main__ as mutate

    calls: list[list[str]] = []
    monkeypatch.setattr(mutate, "stage", lambda package, root: tmp_path)
    monkeypatch.setattr(mutate.subprocess, "run", lambda args, **_: calls.append(args) or SimpleNamespace(returncode=0))
    package = PACKAGES["clip"]
    mutate.run_package(package, tmp_path, 1, "37")  # nothing recorded yet: the pattern
    assert calls[-1][-4:] == ["run", "--max-children", "1", "*__mutmut_*[37]"]
    _meta(tmp_path / "mutants", {"f__mutmut_3": 1, "f__mutmut_7": None, "f__mutmut_8": None, "f__mutmut_13": 0})
    result = mutate.run_package(package, tmp_path, 1, "37")
    assert calls[-1][-1] == "f__mutmut_7" and calls[-1][-2] == "1", "only the sample's pending mutants, by name"
    assert (result["judged"], result["killed"], result["survived"], result["score"]) == (2, 1, 1, 50.0)
    assert result["survivors"] == ["f__mutmut_13"] and result["sample"] == "mutant numbers ending in 3, 7"
    _meta(tmp_path / "mutants", {"f__mutmut_3": 1, "f__mutmut_7": 1, "f__mutmut_13": 0})
    count = len(calls)
    assert mutate.run_package(package, tmp_path, 1, "37")["score"] == pytest.approx(66.7)
    assert len(calls) == count, "a finished sample runs nothing"
