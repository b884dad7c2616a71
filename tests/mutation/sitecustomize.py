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

if "MUTANT_UNDER_TEST" in os.environ or os.environ.get("ADSUITE_MUTATE") == "1":
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
