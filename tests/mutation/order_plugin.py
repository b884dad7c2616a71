"""Pytest plugin of ``make mutate``: against a mutant, run the test files most likely to kill it first.

mutmut runs a mutant's tests with ``-x`` in pytest's collection order, so a mutant that a value test
kills first sits through every file that sorts before it (``test_aie.py`` ... ``test_spec.py``
before ``test_values_*.py``), and each mutant costs nearly the whole folder. Value-pinned files
(``*value*``) go first, then the other files from the cheapest to the dearest (their tests' total
duration in mutmut's stats). Only whole files move, in a stable sort, so each file's tests stay
together and in pytest's order and a module-scoped fixture is still built once. Which tests run,
and so whether a mutant is killed, does not change; only how soon the run stops.

Loaded through ``PYTEST_PLUGINS`` (set by ``sitecustomize.py`` under ``make mutate``); it acts only
in a run against a mutant, never in mutmut's stats run, whose durations it reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

#: Values of ``MUTANT_UNDER_TEST`` that are not a mutant (mutmut's own runs).
NOT_A_MUTANT = {"", "fail", "stats", "list_all_tests"}


def file_rank(node_ids: Sequence[str], durations: Mapping[str, float]) -> dict[str, tuple[int, float, str]]:
    """Sort key of each test file among ``node_ids``: value files first, then by total duration."""
    totals: dict[str, float] = {}
    for node in node_ids:
        path = node.split("::", 1)[0]
        totals[path] = totals.get(path, 0.0) + float(durations.get(node, 0.0))
    return {path: (0 if "value" in Path(path).name else 1, total, path) for path, total in totals.items()}


def _durations() -> dict[str, float]:
    try:  # mutmut runs the tests from its ``mutants`` folder, where its stats are
        return json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return {}


@pytest.hookimpl(trylast=True)  # after pytest's own fixture-aware reordering, which it keeps inside a file
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Reorder the items of a mutant's run by :func:`file_rank` (stable: a file's tests keep their order)."""
    if os.environ.get("MUTANT_UNDER_TEST", "") in NOT_A_MUTANT:
        return
    rank = file_rank([item.nodeid for item in items], _durations())
    items.sort(key=lambda item: rank[item.nodeid.split("::", 1)[0]])
