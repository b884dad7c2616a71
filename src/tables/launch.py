"""Run (or reuse) the launcher for every row of a table, then build, write and log the table.

Each run is ``python -m src.run ...`` in a subprocess, so a table is exactly what anyone gets
with ``make train`` and the same options. A run is skipped when a finished run (``metrics.json``)
of the same request hash exists: the hash is computed with the launcher's own functions, so an
interrupted table resumes where it stopped and a changed config file reruns its rows.

Public API: ``request_hash_of``, ``run_launcher``, ``ablate``, ``run_table_rows``, ``rebuild``,
``compare``, ``write_table``, ``log_table``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.logging import figures
from src.logging.samples import Sample, load_samples, method_figure
from src.tables.build import METRIC_NAMES, Table, ablation_table, compare_table
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

COMPARED = {"zero-shot": ("clip", "linear", "afr", "fb"), "k-shot": ("vtfusion", "clip")}


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


# ---------------------------------------------------------------------- comparison table
def compare(profile: str = "quick", protocol: str = "zero-shot", k: int | None = None,
            data: Sequence[str] = (), data_roots: Sequence[str] = (), runs_root: Path = REPO / "runs",
            overrides: Sequence[str] = (), methods: Sequence[str] | None = None,
            log: bool = True, aux: Sequence[str] = (), aux_roots: Sequence[str] = ()) -> tuple[Table, list[str]]:
    """Run (or reuse) each method on each dataset under the protocol; write table and figures.

    ``aux``/``aux_roots`` (AUX/AUX_ROOT) list one entry per dataset, like ``data_roots``: the two
    directions of a cross-dataset comparison train on different data.
    """
    if protocol not in COMPARED:
        raise SpecError(f"PROTOCOL={protocol!r} is not valid; choose one of {sorted(COMPARED)}")
    if protocol == "k-shot":
        k = k or 2
    elif k is not None:
        raise SpecError(f"K={k} only applies to PROTOCOL=k-shot")
    for name, given in (("DATA_ROOT", data_roots), ("AUX", aux), ("AUX_ROOT", aux_roots)):
        if given and len(given) != max(len(data), 1):
            raise SpecError(f"{name} lists {len(given)} entries for {max(len(data), 1)} datasets "
                            f"(DATA={','.join(data) or 'the profile default'}); give one per dataset")
    datasets = list(data) or [None]
    roots = list(data_roots) or [None] * len(datasets)
    auxes, aux_folders = list(aux) or [None] * len(datasets), list(aux_roots) or [None] * len(datasets)
    for dataset, aux_name, aux_root in zip(datasets, auxes, aux_folders, strict=True):
        _check_one_aux_root(methods or COMPARED[protocol], dataset, aux_name, aux_root, k is not None)
    extra = protocol_overrides(protocol)
    records = scan_runs(runs_root)
    results: dict[str, dict[str, RunRecord]] = {}
    failures: list[str] = []
    for dataset, root, aux_name, aux_root in zip(datasets, roots, auxes, aux_folders, strict=True):
        for method in methods or COMPARED[protocol]:
            argv = ["--method", method, "--profile", profile, "--runs-root", str(runs_root)]
            argv += data_options(dataset, root, aux_name, aux_root)
            argv += ["--k", str(k)] if k is not None else []
            argv += ["--", *extra, *overrides]
            print(f"\n=== compare {protocol}: {method} on {dataset or 'the profile default'}", flush=True)
            try:
                record = _obtain(argv, records)
            except (RunFailedError, SpecError) as err:
                failures.append(f"{method} on {dataset or 'default data'}: {err}")
                continue
            results.setdefault(str(record.meta.get("dataset")), {})[method] = record
    if not results:
        raise RunFailedError("no method ran:\n  " + "\n  ".join(failures))
    name = f"compare-{protocol}"
    title = f"Comparison, {protocol}" + (f" k={k}" if k else "") + f", profile {profile}"
    used = list(dict.fromkeys(m for per in results.values() for m in per))
    check_complete([r for per in results.values() for r in per.values()])
    result = compare_table(title, results, {m: load_reference(reference_path(m, "main")) for m in used}, k)
    pictures = compare_figures(results, runs_root / "tables" / f"{name}-figures")
    _publish(result, runs_root, name, group=name, log=log, pictures=pictures,
             config={"profile": profile, "protocol": protocol, "k": k, "ablation": {"table": "", "row": ""},
                     "runs": {f"{d}/{m}": str(r.path) for d, per in results.items() for m, r in per.items()}})
    return result, failures


def _check_one_aux_root(methods: Sequence[str], dataset: str | None, aux: str | None, aux_root: str | None,
                        k_shot: bool) -> None:
    """One AUX_ROOT serves a dataset's methods only if they all train on the same kind of dataset."""
    from src.pairing import resolve_aux

    if not aux_root or aux or not dataset:
        return
    paired = {m: resolve_aux(m, dataset, None, [], k_shot) for m in methods}
    kinds = {a for a in paired.values() if a not in (None, "none")}
    if len(kinds) > 1:
        raise SpecError(
            f"DATA={dataset}: the methods' paper pairings train on different datasets "
            f"({', '.join(f'{m}: {a}' for m, a in paired.items())}) and one AUX_ROOT cannot be both; give "
            f"AUX=<dataset> for a common pairing, or METHODS= per pairing"
        )


def compare_figures(results: dict[str, dict[str, RunRecord]], out_dir: Path) -> list[Path]:
    """One PNG per dataset and category: image, ground truth, each method's map overlay."""
    written = []
    for dataset, per in results.items():
        samples: dict[str, list[Sample]] = {}
        for method, record in per.items():
            for path in sorted(record.path.rglob("figures/samples.npz")):
                samples.setdefault(method, []).extend(load_samples(path))
        if not samples:
            print(f"no figures/samples.npz in the {dataset} runs (is WandbResults in the trainer callbacks?)")
            continue
        categories = sorted({s.category for ss in samples.values() for s in ss})
        for category in categories:
            try:
                picture = method_figure(samples, category)
            except ValueError as err:
                print(f"figure of {dataset}/{category} skipped: {err}")
                continue
            written.append(figures.write_png(out_dir / dataset / f"{category}.png", picture))
    return written


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

    from src.run import make_logger

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
