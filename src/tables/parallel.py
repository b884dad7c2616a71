"""The rows of a table on one machine, up to JOBS at once, each pinned to its own devices.

``make ablate ... JOBS=N [GPUS=0,1,2,3]``: the pending rows (those without a finished run of the same
request hash) go to a ``concurrent.futures`` thread pool of N workers; each worker runs one
``python -m src.run`` subprocess at a time, with its share of the machine in the environment:
``CUDA_VISIBLE_DEVICES`` (GPUS split evenly over the JOBS) and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``
(the CPU cores split evenly), so rows never fight over a device or oversubscribe the cores. With
JOBS>1 a row's output goes to its own log file; with JOBS=1 it is echoed as before.

Public API: ``RowTask``, ``Slot``, ``plan_slots``, ``run_rows``, ``Progress``, ``open_log``.
"""

from __future__ import annotations

import os
import queue
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from src.tables.records import RunRecord, finished_run
from src.tables.spec import SpecError


@dataclass(frozen=True)
class RowTask:
    """One run of a table: (row, k) it fills, a label for people, the launcher's arguments."""

    key: tuple[str, int | None]
    label: str
    argv: list[str]


@dataclass(frozen=True)
class Slot:
    """A worker's share of the machine: its GPUs (empty on CPU) and its CPU threads."""

    gpus: tuple[str, ...]
    threads: int
    pinned: bool = True

    def env(self) -> dict[str, str]:
        """Environment variables that confine one row to this share (nothing when not pinned)."""
        if not self.pinned:
            return {}
        out = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if self.gpus:
            out["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return out


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_slots(jobs: int, gpus: Sequence[str] = (), cores: int | None = None) -> list[Slot]:
    """JOBS workers; GPUS split into equal consecutive groups, CPU cores split evenly.

    JOBS=1 without GPUS is the serial behaviour: one unpinned slot, the row sees the whole machine.
    """
    if jobs < 1:
        raise SpecError(f"JOBS={jobs} must be a positive number of rows run at once")
    gpus = [g.strip() for g in gpus if g.strip()]
    cores = cores or cpu_count()
    threads = max(1, cores // jobs)
    if not gpus:
        return [Slot((), threads, pinned=jobs > 1) for _ in range(jobs)]
    if len(gpus) < jobs or len(gpus) % jobs:
        raise SpecError(f"GPUS={','.join(gpus)} ({len(gpus)} devices) cannot be split evenly over JOBS={jobs}; "
                        f"give a multiple of JOBS devices, or JOBS={len(gpus)}")
    per = len(gpus) // jobs
    return [Slot(tuple(gpus[i * per:(i + 1) * per]), threads) for i in range(jobs)]


class Progress:
    """A line per finished row (row, seconds, headline metric) under an overall bar for the table."""

    def __init__(self, total: int, done: int, metric: tuple[str, str], desc: str) -> None:
        self.total, self.count, self.metric = total, done, metric
        self.bar = tqdm(total=total, initial=done, desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True)

    def say(self, text: str) -> None:
        """A line above the bar, flushed at once (stdout may be a file or a pipe)."""
        self.bar.write(text, file=sys.stdout)
        sys.stdout.flush()

    def finished(self, label: str, seconds: float, record: RunRecord | None = None, error: str = "") -> str:
        self.count += 1
        key, name = self.metric
        if record is not None:
            value = record.results.get("mean", {}).get(key)
            text = f"{name} {'n/a' if value is None else f'{100 * value:.1f}'}"
        else:
            text = f"FAILED: {error}"
        line = f"[{self.count}/{self.total}] {label}  {seconds:.1f} s  {text}"
        self.say(line)
        self.bar.update(1)
        return line

    def close(self) -> None:
        self.bar.close()


Launch = Callable[[RowTask, Slot, Path | None], RunRecord]
Submit = Callable[[list[RowTask], Progress], dict[int, RunRecord | str]]


def run_rows(tasks: Sequence[RowTask], records: list[RunRecord], table: str, slots: Sequence[Slot],
             launch: Launch, request_hash: Callable[[list[str]], str], metric: tuple[str, str],
             log_dir: Path, submit: Submit | None = None) -> tuple[dict[tuple[str, int | None], list[RunRecord]],
                                                                  list[str]]:
    """Run (or reuse) every task; returns the runs per (row, k) in task order, and the failures.

    A task whose request hash already has a finished run of this table and row is skipped. The rest
    go to ``submit`` (a cluster) when given, else to the slots. Results are gathered in task order, so
    seeds appear in the table in the same order whatever finished first.
    """
    outcome: dict[int, RunRecord | str] = {}
    pending: list[int] = []
    for i, task in enumerate(tasks):
        digest = request_hash(task.argv)
        done = finished_run(records, digest, table, task.key[0])
        if done is not None:
            print(f"[skip] {task.label}: finished run with request hash {digest}: {done.path}", flush=True)
            outcome[i] = done
        else:
            pending.append(i)
    progress = Progress(len(tasks), len(outcome), metric, desc=table)
    try:
        if submit is not None and pending:
            results = submit([tasks[i] for i in pending], progress)
            outcome.update({pending[j]: value for j, value in results.items()})
        else:
            outcome.update(_on_slots(tasks, pending, slots, launch, progress, log_dir))
    finally:
        progress.close()
    chosen: dict[tuple[str, int | None], list[RunRecord]] = {}
    failures: list[str] = []
    for i, task in enumerate(tasks):
        value = outcome.get(i, "not run")
        if isinstance(value, RunRecord):
            chosen.setdefault(task.key, []).append(value)
            if value not in records:
                records.append(value)
        else:
            failures.append(f"{task.label}: {value}")
    return chosen, failures


def _on_slots(tasks: Sequence[RowTask], pending: list[int], slots: Sequence[Slot], launch: Launch,
              progress: Progress, log_dir: Path) -> dict[int, RunRecord | str]:
    """A pool of len(slots) workers; a worker holds one slot while its row runs."""
    free: queue.Queue[Slot] = queue.Queue()
    for slot in slots:
        free.put(slot)
    serial = len(slots) == 1 and not slots[0].pinned

    def work(i: int) -> tuple[RunRecord, float]:
        slot = free.get()
        started = time.monotonic()
        try:
            task = tasks[i]
            if serial:
                print(f"\n=== {task.label}", flush=True)
            log = None if serial else log_dir / f"{_slug(task.label)}.log"
            if log is not None:
                progress.say(f"started {task.label} on {_where(slot)}; log: {log}")
            return launch(task, slot, log), time.monotonic() - started
        finally:
            free.put(slot)

    out: dict[int, RunRecord | str] = {}
    with ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="row") as pool:
        futures: dict[Future, tuple[int, float]] = {pool.submit(work, i): (i, time.monotonic()) for i in pending}
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
            for future in finished:
                i, submitted = futures[future]
                try:
                    record, seconds = future.result()
                except Exception as err:  # noqa: BLE001 - one row failing must not stop the others
                    out[i] = str(err)
                    progress.finished(tasks[i].label, time.monotonic() - submitted, error=str(err))
                    continue
                out[i] = record
                progress.finished(tasks[i].label, seconds, record)
    return out


def open_log(log: Path, command: list[str], env: dict[str, str] | None) -> Any:
    """A row's log, appended to (a rerun keeps the earlier attempt's output above a new header)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sink = log.open("a")
    pinned = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    sink.write(f"\n### {time.strftime('%Y-%m-%d %H:%M:%S')} {pinned} {' '.join(command[1:])}\n")
    return sink


def _where(slot: Slot) -> str:
    return f"GPU {','.join(slot.gpus)}" if slot.gpus else f"{slot.threads} CPU thread(s)"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@=-]+", "_", text).strip("_")
