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
    # test files under ``tests`` that exercise none of ``files`` directly (slow end-to-end glue tests)
    ignore: tuple[str, ...] = field(default=())

    def pytest_args(self) -> list[str]:
        return [*self.tests, *(f"--ignore={path}" for path in self.ignore), "-m", "not ddp and not slow"]


#: The CLI / callback / bench tests: end-to-end (5-15 s each on a loaded machine) and they reach the
#: computation only through the accumulator, whose own tests judge it value by value.
_METRICS_GLUE_TESTS = ("tests/metrics/test_cli.py", "tests/metrics/test_callback.py", "tests/metrics/test_bench.py")

PACKAGES: dict[str, Package] = {p.name: p for p in (
    # The metrics package is split so that one run stays well under an hour on a shared 2-core
    # machine: ``metrics`` is the arithmetic of the numbers we publish (curves from histograms,
    # PRO regions and the public AUPRO grid, the pixel histograms' binning, and the reason a metric
    # is undefined), judged by the brute-force comparisons of test_curves.py, test_accumulator.py
    # and test_pixel_histograms.py; ``metrics-io`` is the bookkeeping around it
    # (streaming accumulation, disk spill, cross-rank sums, file writing). Never mutated: bench.py
    # (a timing script, no result is read from it), callback.py and __main__.py (Lightning / CLI
    # glue that forwards to the accumulator; their tests are end-to-end and take 5-15 s each) and
    # __init__.py (re-exports).
    Package("metrics", ("src/metrics/curves.py", "src/metrics/aupro.py", "src/metrics/pixel_histograms.py",
                        "src/metrics/undefined.py"), ("tests/metrics",),
            ignore=_METRICS_GLUE_TESTS + ("tests/metrics/test_distributed.py",)),
    Package("metrics-io", ("src/metrics/accumulator.py", "src/metrics/spill.py", "src/metrics/io.py",
                           "src/metrics/distributed.py"), ("tests/metrics",), ignore=_METRICS_GLUE_TESTS),
    Package("backbone", ("src/backbone/*",), ("tests/backbone",), skip=("src/backbone/__init__.py",)),
    Package("afrclip", ("src/methods/afrclip/*",), ("tests/methods/afrclip",),
            skip=("src/methods/afrclip/params.py", "src/methods/afrclip/__init__.py")),
    Package("fbclip", ("src/methods/fbclip/*",), ("tests/methods/fbclip",),
            skip=("src/methods/fbclip/params.py", "src/methods/fbclip/__init__.py")),
    # VTFusion is split like the metrics (3013 mutants in one run would take over two hours here):
    # ``vtfusion`` is the model (AIE, ATE, MPF, prototypes, Lightning wiring), ``vtfusion-das`` the
    # anomaly synthesis. Both are judged by the whole of tests/methods/vtfusion.
    Package("vtfusion", tuple(f"src/methods/vtfusion/{name}.py" for name in (
        "aie", "ate", "mpf", "nearest", "spec", "torch_model", "lightning_model")), ("tests/methods/vtfusion",)),
    Package("vtfusion-das", ("src/methods/vtfusion/das.py", "src/methods/vtfusion/das_regions.py",
                             "src/methods/vtfusion/das_types.py"), ("tests/methods/vtfusion",)),
    Package("clip", ("src/methods/clip/*",), ("tests/methods/clip",), skip=("src/methods/clip/__init__.py",)),
)}
