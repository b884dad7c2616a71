"""What ``make mutate`` mutates, package by package, and which tests judge each package.

A package's tests are the folder that mirrors it. Tests that start other Python processes through
``torch.multiprocessing`` spawn are left out: mutmut puts ``mutants/src`` first on ``sys.path``,
so a re-executed interpreter imports ``src/logging`` as the standard library's ``logging``.
Their computations are covered by the single-process tests of the same package.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Package:
    """One mutation target: files to mutate and the pytest arguments that select its tests."""

    name: str
    files: tuple[str, ...]
    tests: tuple[str, ...]
    skip: tuple[str, ...] = field(default=())  # files under ``files`` that hold no computation

    def pytest_args(self) -> list[str]:
        return [*self.tests, "-m", "not ddp and not slow"]


PACKAGES: dict[str, Package] = {p.name: p for p in (
    Package("metrics", ("src/metrics/*",), ("tests/metrics",),
            skip=("src/metrics/bench.py", "src/metrics/__init__.py")),
    Package("backbone", ("src/backbone/*",), ("tests/backbone",), skip=("src/backbone/__init__.py",)),
    Package("afrclip", ("src/methods/afrclip/*",), ("tests/methods/afrclip",),
            skip=("src/methods/afrclip/smoke.py", "src/methods/afrclip/params.py",
                  "src/methods/afrclip/__init__.py")),
    Package("fbclip", ("src/methods/fbclip/*",), ("tests/methods/fbclip",),
            skip=("src/methods/fbclip/smoke.py", "src/methods/fbclip/params.py", "src/methods/fbclip/__init__.py")),
    Package("vtfusion", ("src/methods/vtfusion/*",), ("tests/methods/vtfusion",),
            skip=("src/methods/vtfusion/smoke.py", "src/methods/vtfusion/params.py",
                  "src/methods/vtfusion/__init__.py")),
    Package("clip", ("src/methods/clip/*",), ("tests/methods/clip",), skip=("src/methods/clip/__init__.py",)),
)}
