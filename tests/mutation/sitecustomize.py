"""Lets mutmut mutate a package that is literally named ``src``.

mutmut 3 assumes a "src layout", where ``src/`` is a folder above the package: it strips a leading
``src.`` from the names of the mutants it generates and refuses trampoline hits from modules whose
name starts with ``src.``. This suite's package *is* ``src`` (``python -m src.run``), so without
this shim the stats run fails and no mutant is ever activated. The shim maps the names both ways,
inside every Python process started by ``make mutate`` (it is on ``PYTHONPATH`` only there), and
does nothing when mutmut is not installed or not running.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def widen_to_test_files(tests_by_function: dict[str, set[str]], all_tests: Iterable[str]) -> None:
    """Map each mutated function to every test of each test file that reached it (in place).

    mutmut runs, for a mutant, only the tests that called its function during the stats run. A
    module-scoped fixture calls the code once, inside the first test that asks for it, so every later
    test of that file, which checks the fixture's values, is never run against the mutant: a mutant
    the suite kills (``forward`` scoring the wrong token, say) is reported as surviving. Every
    module-scoped fixture lives in one test file (or its folder's conftest), so running the whole
    file of any test that reached the function closes the gap.
    """
    by_file: dict[str, set[str]] = {}
    for test in {*all_tests, *(t for tests in tests_by_function.values() for t in tests)}:
        by_file.setdefault(test.split("::", 1)[0], set()).add(test)
    for tests in tests_by_function.values():
        tests.update(*(by_file[test.split("::", 1)[0]] for test in list(tests)))


if "MUTANT_UNDER_TEST" in os.environ or os.environ.get("ADSUITE_MUTATE") == "1":
    # Value-pinned test files first against each mutant (order_plugin.py): same verdicts, sooner.
    if "order_plugin" not in os.environ.get("PYTEST_PLUGINS", "").split(","):
        os.environ["PYTEST_PLUGINS"] = ",".join(filter(None, [os.environ.get("PYTEST_PLUGINS"), "order_plugin"]))
    try:
        from mutmut import stats as _stats
        from mutmut.mutation import trampoline as _trampoline
    except ImportError:  # mutmut absent: nothing to adapt
        _trampoline = None

    if _trampoline is not None:
        _get = _trampoline.get_mutant_under_test
        _record = _stats.record_trampoline_hit
        _special = {"", "fail", "stats", "list_all_tests"}

        def _mutant_under_test() -> str:
            # mutmut names the mutant "metrics.aupro.x_f__mutmut_1"; the function's module is "src.metrics.aupro".
            name = _get()
            return name if name in _special or name.startswith("src.") else f"src.{name}"

        def _record_hit(name: str, caller: str | None = None) -> None:
            strip = lambda text: text[4:] if text and text.startswith("src.") else text  # noqa: E731
            _record(strip(name), caller=strip(caller))

        _trampoline.get_mutant_under_test = _mutant_under_test
        _trampoline.record_trampoline_hit = _record_hit

        # mutmut binds these names when its __main__ runs (after this file), so the wrapped ones are used.
        _load, _save = _stats.load_stats, _stats.save_stats

        def _load_stats() -> bool:
            loaded = _load()
            widen_to_test_files(_stats.state().tests_by_mangled_function_name, _stats.state().duration_by_test)
            return loaded

        def _save_stats() -> None:
            widen_to_test_files(_stats.state().tests_by_mangled_function_name, _stats.state().duration_by_test)
            _save()

        _stats.load_stats, _stats.save_stats = _load_stats, _save_stats


class _FrameNamedInit:
    """A read-only view of a frame whose code is renamed ``__init__`` (all Lightning reads of it)."""

    def __init__(self, frame) -> None:  # noqa: ANN001 - a frame object
        self.f_code = frame.f_code.replace(co_name="__init__")
        self.f_locals = frame.f_locals
        self.f_back = frame.f_back


def _accept_mutmut_constructors(parsing) -> None:  # noqa: ANN001 - the module lightning.pytorch.utilities.parsing
    """Let ``save_hyperparameters`` read a mutated ``__init__``.

    Lightning collects constructor arguments only from a frame whose code is named ``__init__``;
    mutmut runs a constructor's body as ``xǁClassǁ__init____mutmut_orig`` (or ``_N``), so without this
    every LightningModule built under ``make mutate`` has empty ``hparams`` and its tests fail in the
    stats run before any mutant is tried.
    """
    original = parsing._get_init_args

    def _get_init_args(frame):  # noqa: ANN001, ANN202
        if "ǁ__init____mutmut_" in frame.f_code.co_name:
            frame = _FrameNamedInit(frame)
        return original(frame)

    parsing._get_init_args = _get_init_args


class _PatchAfterImport:
    """Meta-path hook: patch Lightning's parsing module right after it is first imported (never import it here)."""

    target = "lightning.pytorch.utilities.parsing"

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201
        if name != self.target:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module) -> None:  # noqa: ANN001
            load(module)
            _accept_mutmut_constructors(module)

        spec.loader.exec_module = exec_module
        return spec


if "MUTANT_UNDER_TEST" in os.environ or os.environ.get("ADSUITE_MUTATE") == "1":
    import sys as _sys

    _sys.meta_path.insert(0, _PatchAfterImport())
