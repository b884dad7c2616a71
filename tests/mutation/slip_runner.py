"""``make slips``: apply each catalogued slip in a staged copy of the tree and see whether the tests notice.

For every slip (``tests/mutation/slips.py``): the staged file gets the slip, the slip's judging tests
run with ``-x -q -m "not slow and not ddp"``; if they pass, the rest of the non-slow suite runs
(``tests/`` without the paths already run), since ``make test`` is the judge. Afterwards every test that
caught a slip is rerun on the unmodified copy: one that fails there too caught nothing. The file is restored
before the next slip. Prints caught / missed per slip and the fraction caught; a full run writes
``runs/mutation/slips.json`` (an ``--only`` run writes ``slips-partial.json`` instead, so that a
partial rerun never replaces the full measurement).

The working tree is never touched: each worker copies the files git knows (tracked and untracked,
not ignored) into a temporary folder, links ``.venv`` and runs pytest through ``slip_worker.py``
(third-party libraries imported once, one forked pytest per run).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.mutation.slips import CATALOGUE, Slip

REPO = Path(__file__).resolve().parents[2]
MARKERS = ["-m", "not slow and not ddp"]
#: Left out of the whole-suite rerun: it checks that every ``old`` text is in the tree, which a
#: staged slip removes by construction, so it would "catch" every slip.
SELF_TEST = "tests/test_slips.py"


def stage(where: Path) -> Path:
    """Copy the files git lists (tracked and untracked, not ignored) into ``where``; link ``.venv``."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            target = where / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if (REPO / ".venv").exists():
        (where / ".venv").symlink_to((REPO / ".venv").resolve())
    return where


def _environment() -> dict[str, str]:
    # No bytecode: a restored file must never be shadowed by the slip's cached .pyc.
    return dict(os.environ, PYTHONDONTWRITEBYTECODE="1", WANDB_MODE="offline", WANDB_SILENT="true")


class Worker:
    """A staged copy of the tree and its pytest server (``slip_worker.py``, libraries imported once)."""

    def __init__(self, where: Path) -> None:
        self.where = stage(where)
        code = "import runpy; runpy.run_path('tests/mutation/slip_worker.py', run_name='__main__')"
        self.server = subprocess.Popen([sys.executable, "-c", code], cwd=self.where, env=_environment(),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.server.stdout.readline()  # {"ready": true} once the libraries are imported
        self.log = self.where / ".slip-pytest.log"

    def pytest(self, args: list[str], timeout: float, first: bool = True) -> tuple[int, str]:
        """Run pytest in the staged tree (``-x`` unless ``first`` is False); returns (exit code, the
        FAILED/ERROR summary lines, one per line, or "")."""
        stop = ["-x"] if first else []
        request = {"args": [*stop, "-q", "-p", "no:cacheprovider", *MARKERS, *args], "log": str(self.log),
                   "timeout": timeout}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        code = json.loads(self.server.stdout.readline())["rc"]
        if code == -1:
            return code, "timeout"
        lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.startswith(("FAILED", "ERROR"))]
        return code, "\n".join(lines)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)


def ordered(paths: tuple[str, ...], root: Path) -> list[str]:
    """Test files of ``paths``, the value-pinned ones (``*value*``) first: with ``-x`` a slip that
    changes a number stops at the first (fast) file that pins it instead of after the slow ones."""
    files = []
    for path in paths:
        found = sorted((root / path).rglob("test_*.py")) if (root / path).is_dir() else [root / path]
        files += [str(f.relative_to(root)) for f in found]
    return sorted(dict.fromkeys(files), key=lambda f: ("value" not in Path(f).name, files.index(f)))


def judge(slip: Slip, worker: Worker, suite: bool, timeout: float) -> dict:
    """Apply ``slip`` in the worker's staged tree, run its tests (then the suite), restore the file."""
    path = worker.where / slip.file
    original = path.read_text()
    if original.count(slip.old) != 1:
        raise SystemExit(f"slips: {slip.id}: old text occurs {original.count(slip.old)} times in {slip.file}")
    started = time.time()
    path.write_text(original.replace(slip.old, slip.new))
    try:
        code, failure = worker.pytest(ordered(slip.tests, worker.where), timeout)
        by = "targeted" if code != 0 else None
        if code == 0 and suite:
            ignored = [f"--ignore={p}" for p in (*slip.tests, SELF_TEST)]
            code, failure = worker.pytest(["tests", *ignored], timeout)
            by = "suite" if code not in (0, 5) else None
    finally:
        path.write_text(original)
    first = failure.splitlines()[0] if failure else ""
    return {"id": slip.id, "file": slip.file, "kind": slip.kind, "caught": by is not None, "by": by,
            "exit_code": code, "failure": first[:300], "node": node_id(first),
            "seconds": round(time.time() - started, 1)}


def node_id(summary_line: str) -> str:
    """``FAILED tests/x.py::test_y[p] - message`` -> ``tests/x.py::test_y[p]`` ("" for none)."""
    parts = summary_line.split(" ", 1)
    return parts[1].split(" - ", 1)[0].strip() if len(parts) == 2 else ""


def check_catches(results: list[dict], worker: Worker, timeout: float) -> None:
    """Rerun, on the unmodified tree, every test that caught a slip; a test that fails there too
    caught nothing (a broken or flaky test would otherwise make every slip look caught)."""
    nodes = sorted({r["node"] for r in results if r["caught"] and r["node"]})
    if not nodes:
        return
    code, failures = worker.pytest(nodes, timeout, first=False)
    broken = {node_id(line) for line in failures.splitlines()}
    for result in results:
        if result["caught"] and (result["node"] in broken or not result["node"] and result["exit_code"] != -1):
            result.update(caught=False, by=None, failure=f"unmodified tree fails too: {result['failure']}")
    if broken:
        print(f"slips: {len(broken)} catching tests fail on the unmodified tree: {sorted(broken)}", flush=True)


def run(slips: list[Slip], jobs: int, suite: bool, timeout: float, check_baseline: bool = True) -> list[dict]:
    """Judge every slip, ``jobs`` at a time, each worker in its own staged copy; then check that every
    test that caught one passes on the unmodified copy."""
    with tempfile.TemporaryDirectory(prefix="slips-") as tmp:
        workers: queue.Queue[Worker] = queue.Queue()
        for i in range(max(1, jobs)):
            workers.put(Worker(Path(tmp) / f"w{i}"))

        def work(slip: Slip) -> dict:
            worker = workers.get()
            try:
                result = judge(slip, worker, suite, timeout)
            finally:
                workers.put(worker)
            verdict = f"caught ({result['by']})" if result["caught"] else "MISSED"
            print(f"{slip.id:<34} {verdict:<17} {result['seconds']:>6.1f}s  {result['node'][:100]}", flush=True)
            return result

        try:
            with ThreadPoolExecutor(max(1, jobs)) as pool:
                results = list(pool.map(work, slips))
            if check_baseline:
                worker = workers.get()
                workers.put(worker)  # back in the queue, so that it is closed below
                check_catches(results, worker, timeout)
            return results
        finally:
            while not workers.empty():
                workers.get().close()


def summary(results: list[dict], seconds: float, suite: bool) -> dict:
    """Counts, the caught fraction and the conditions of the run."""
    caught = sum(r["caught"] for r in results)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "slips": len(results), "caught": caught, "missed": [r["id"] for r in results if not r["caught"]],
        "fraction_caught": round(caught / len(results), 4) if results else None,
        "whole_suite_rerun_for_misses": suite, "minutes": round(seconds / 60, 1), "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated slip ids (default: the whole catalogue)")
    parser.add_argument("--jobs", type=int, default=2, help="slips judged side by side (default 2)")
    parser.add_argument("--no-suite", action="store_true",
                        help="do not rerun the whole non-slow suite for a slip the targeted tests miss")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the rerun of the catching tests on the unmodified tree")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run (then: caught)")
    args = parser.parse_args(argv)
    wanted = [s for s in args.only.split(",") if s]
    known = {s.id: s for s in CATALOGUE}
    unknown = [s for s in wanted if s not in known]
    if unknown:
        parser.error(f"unknown slip ids {unknown}")
    slips = [known[s] for s in wanted] if wanted else list(CATALOGUE)
    started = time.time()
    results = run(slips, args.jobs, not args.no_suite, args.timeout, not args.no_baseline)
    report = summary(results, time.time() - started, not args.no_suite)
    out = REPO / "runs" / "mutation" / ("slips.json" if not wanted and not args.no_suite else "slips-partial.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"caught {report['caught']} of {report['slips']} ({100 * (report['fraction_caught'] or 0):.1f}%) "
          f"in {report['minutes']} min; missed: {', '.join(report['missed']) or 'none'}; wrote {out}")
    return 0
