"""Run (or reuse) the launcher for every row of a table, then build, write and log the table.

Each run is ``python -m src.run ...`` in a subprocess, so a table is exactly what anyone gets
with ``make train`` and the same options. A run is skipped when a finished run (``metrics.json``)
of the same request hash exists: the hash is computed with the launcher's own functions, so an
interrupted table resumes where it stopped and a changed config file reruns its rows.

Public API: ``request_hash_of``, ``run_launcher``, ``ablate``, ``run_table_rows``, ``rebuild``,
``compare`` (from ``src/tables/compare.py``), ``COMPARED``, ``write_table``, ``log_table``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.tables.build import METRIC_NAMES, Table, ablation_table
from src.tables.parallel import Progress, RowTask, Slot, open_log, plan_slots, run_rows
from src.tables.records import RunRecord, check_complete, finished_run, scan_runs, select_rows
from src.tables.report import write_report_spec
from src.tables.spec import (
    REPO,
    AblationSpec,
    SpecError,
    available_tables,
    load_ablation,
    load_reference,
    protocol_overrides,
    reference_path,
    to_cli,
)


class RunFailedError(RuntimeError):
    """A launcher subprocess exited with an error."""


def request_hash_of(argv: Sequence[str]) -> str:
    """The ``request_hash`` the launcher will record for ``python -m src.run <argv>``."""
    from src import run as launcher

    try:
        return launcher.request_hash_for(list(argv))
    except launcher.LaunchError as err:
        raise SpecError(str(err)) from err


def run_launcher(argv: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None) -> Path:
    """Run the launcher; returns the run directory it reports last.

    Its output is echoed, or appended to ``log`` when given (rows running side by side); ``env``
    is added to this process's environment (a row's devices and threads).
    """
    command = [sys.executable, "-m", "src.run", *argv]
    if log is None:
        print("$ " + " ".join(command[1:]), flush=True)
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    run_dir = None
    assert proc.stdout is not None
    sink = open_log(log, command, env) if log is not None else None
    try:
        for line in proc.stdout:
            if sink is None:
                print(line, end="", flush=True)
            else:
                sink.write(line)
                sink.flush()
            if line.startswith("run: "):
                run_dir = line[5:].strip()
    finally:
        if sink is not None:
            sink.close()
    where = "see its output above" if log is None else f"see {log}"
    if proc.wait() != 0 or run_dir is None:
        raise RunFailedError(f"`{' '.join(command[1:])}` failed (exit {proc.returncode}); {where}")
    path = Path(run_dir)
    return path if path.is_absolute() else REPO / path


def _record(run_dir: Path) -> RunRecord:
    found = [r for r in scan_runs(run_dir.parent) if r.path.resolve() == run_dir.resolve()]
    if not found:
        raise RunFailedError(f"{run_dir} has no metrics.json with launcher metadata")
    return found[0]


def _obtain(argv: list[str], records: list[RunRecord], table: str | None = None, row: str | None = None,
            rerun: bool = False) -> RunRecord:
    digest = request_hash_of(argv)
    done = None if rerun else finished_run(records, digest, table, row)
    if done is not None:
        print(f"[skip] finished run with request hash {digest}: {done.path}", flush=True)
        return done
    record = _record(run_launcher(argv))
    records.append(record)
    return record


def data_options(data: str | None, data_root: str | None, aux: str | None, aux_root: str | None) -> list[str]:
    """Launcher options DATA, DATA_ROOT, AUX, AUX_ROOT (those given)."""
    pairs = (("--data", data), ("--data-root", data_root), ("--aux", aux), ("--aux-root", aux_root))
    return [item for flag, value in pairs if value for item in (flag, value)]


# ---------------------------------------------------------------------- ablation tables
def ablate(method: str, table: str, profile: str = "quick", seeds: Sequence[int] | None = None,
           data: str | None = None, data_root: str | None = None, runs_root: Path = REPO / "runs",
           overrides: Sequence[str] = (), log: bool = True, aux: str | None = None,
           aux_root: str | None = None, rows: Sequence[str] | None = None, jobs: int = 1,
           gpus: Sequence[str] = (), cluster: Any = None) -> tuple[Table, list[str]]:
    """Run every row (x every k, x every seed) that has no finished run; write and log the table.

    ``aux``/``aux_root`` are the launcher's AUX/AUX_ROOT, the same for every row. ``rows`` runs
    only the named rows (the table then shows the others as missing). ``jobs``/``gpus``: rows at
    once here, each pinned to its devices; ``cluster``: ``ClusterOptions`` (one submitit job per run).

    Returns the table and the failures (one message per row that could not run).
    """
    spec = load_ablation(method, table)
    names = [row.name for row in spec.rows]
    unknown = [r for r in rows or () if r not in names]
    if unknown:
        raise SpecError(f"ROWS={','.join(rows or ())}: {unknown} not rows of {method}/{table}; "
                        f"valid: {', '.join(names)}")
    slots = plan_slots(jobs, gpus)
    records = scan_runs(runs_root)
    tasks: list[RowTask] = []
    for k in spec.ks:
        for row in [r for r in spec.rows if not rows or r.name in rows]:
            for seed in seeds or [None]:
                argv = ["--method", method, "--profile", profile, "--runs-root", str(runs_root),
                        "--ablation-table", table, "--ablation-row", row.name]
                argv += data_options(data, data_root, aux, aux_root)
                argv += ["--k", str(k)] if k is not None else []
                argv += ["--seed", str(seed)] if seed is not None else []
                argv += ["--suffix", f"seed{seed}"] if seeds and len(seeds) > 1 else []
                argv += ["--", *to_cli(row.overrides), *overrides]
                label = f"{table}/{row.name}" + (f"@k{k}" if k is not None else "") + (
                    f" seed {seed}" if seed is not None else "")
                tasks.append(RowTask((row.name, k), f"{method} {label}", argv))
    chosen, failures = run_table_rows(tasks, records, spec, slots, runs_root, cluster)
    check_complete([r for runs in chosen.values() for r in runs])
    result = ablation_table(spec, chosen, load_reference(reference_path(method, table)))
    _publish(result, runs_root, f"{method}-{table}", group=table, log=log,
             config={"method": method, "profile": profile, "ablation": {"table": table, "row": ""},
                     "runs": {f"{r}@k{k}" if k else r: [str(x.path) for x in v] for (r, k), v in chosen.items()}})
    write_report_spec(spec, result, chosen, runs_root, publish=log)
    return result, failures


def run_table_rows(tasks: list[RowTask], records: list[RunRecord], spec: AblationSpec, slots: list[Slot],
                   runs_root: Path, cluster: Any = None) -> tuple[dict[tuple[str, int | None], list[RunRecord]],
                                                                  list[str]]:
    """The rows of ``spec`` on ``slots`` (this machine) or on ``cluster``; see ``parallel.run_rows``."""
    def launch(task: RowTask, slot: Slot, log_path: Path | None) -> RunRecord:
        # Only what applies is passed: a serial row is exactly the one-argument call of before.
        extra = {k: v for k, v in (("env", slot.env()), ("log", log_path)) if v}
        return _record(run_launcher(task.argv, **extra))

    def submit(pending: list[RowTask], progress: Progress) -> dict[int, RunRecord | str]:
        from src.tables.cluster import submit_rows

        return submit_rows(pending, cluster, progress, _record)

    headline = (spec.metrics[0], METRIC_NAMES[spec.metrics[0]])
    log_dir = runs_root / "tables" / "logs" / f"{spec.method}-{spec.table}"
    return run_rows(tasks, records, spec.table, slots, launch, request_hash_of, headline, log_dir,
                    submit if cluster is not None else None)


def rebuild(method: str | None, table: str | None, runs_root: Path = REPO / "runs", log: bool = False) -> list[Table]:
    """Tables rebuilt from run directories alone; all tables that have runs when not given."""
    records = scan_runs(runs_root)
    if method and table:
        wanted = [(method, table)]
    else:
        present = {(r.method, r.table) for r in records if r.table}
        wanted = sorted((m, t) for m, ts in available_tables(method).items() for t in ts
                        if (m, t) in present and (table is None or t == table))
        if not wanted:
            print(f"no ablation runs under {runs_root}" + (f" for METHOD={method}" if method else ""))
    tables = []
    for m, t in wanted:
        spec = load_ablation(m, t)
        rows = select_rows(records, m, t)
        result = ablation_table(spec, rows, load_reference(reference_path(m, t)))
        _publish(result, runs_root, f"{m}-{t}", group=t, log=log,
                 config={"method": m, "ablation": {"table": t, "row": ""}})
        write_report_spec(spec, result, rows, runs_root, publish=log)
        tables.append(result)
    return tables


# ---------------------------------------------------------------------- output
def write_table(table: Table, out_dir: Path, name: str) -> tuple[Path, Path]:
    from src.runs import atomic_write_text

    md, csv = out_dir / f"{name}.md", out_dir / f"{name}.csv"
    atomic_write_text(md, table.to_markdown())
    atomic_write_text(csv, table.to_csv())
    return md, csv


def log_table(table: Table, save_dir: Path, name: str, group: str, config: dict[str, Any],
              pictures: Sequence[Path] = ()) -> str | None:
    """Log the table (and figures) as one W&B run of its own in group ``group``; returns its folder."""
    import wandb

    from src.launch.tracking import make_logger

    save_dir.mkdir(parents=True, exist_ok=True)
    tags = ["table", f"table:{group}"]
    logger = make_logger(save_dir, name, tags, {**config, "ablation": {"table": group, "row": ""}})
    run = logger.experiment
    payload: dict[str, Any] = {"table": wandb.Table(columns=table.header, data=table.rows)}
    if pictures:
        rows = [[f"{p.parent.name}/{p.stem}", wandb.Image(str(p))] for p in pictures]
        payload["figures"] = wandb.Table(columns=["figure", "image"], data=rows)
    run.log(payload)
    location = str(Path(run.dir).parent)
    wandb.finish()
    if os.environ.get("WANDB_MODE") == "offline":
        print(f"W&B offline run of the table saved in {location}; upload it later with: wandb sync {location}")
    return location


def _publish(table: Table, runs_root: Path, name: str, group: str, log: bool, config: dict[str, Any],
             pictures: Sequence[Path] = ()) -> None:
    out_dir = runs_root / "tables"
    md, csv = write_table(table, out_dir, name)
    print()
    print(table.to_markdown())
    print(f"table written to {md} and {csv}")
    for path in pictures:
        print(f"figure: {path}")
    if log:
        log_table(table, out_dir, name, group, config, pictures)


# Last: the comparison module calls back into this one (its runs go through ``_obtain``).
from src.tables.compare import COMPARED, compare  # noqa: E402

__all__ = ["COMPARED", "RunFailedError", "ablate", "compare", "data_options", "log_table", "protocol_overrides",
           "rebuild", "request_hash_of", "run_launcher", "run_table_rows", "write_table"]
