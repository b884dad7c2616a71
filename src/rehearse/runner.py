"""Run runbook entries on stand-ins with the width-shrunk backbones, few steps, few test batches.

Each entry runs as the user would type it (``make ...``), with three additions that the report
names: ``ADSUITE_REHEARSAL=1`` (the width-64 twin of the paper backbone, random weights; AFR-CLIP's
SP CNN random too), the limit flags in ``SHRINK`` appended to ``ARGS``, and ``ADSUITE_RUNS_ROOT``
pointing at the rehearsal's own folder (a user's ``runs/`` and tables are never touched). For
``make ablate`` with ``rows: first`` every row's config is composed and type-checked first, then
``ROWS=<first row>`` runs. A ``resume`` entry is killed at its second training step (after the
first checkpoint) and continued with ``RESUME=<run dir>``.

Public API: ``SHRINK``, ``Outcome``, ``make_command``, ``check_rows``, ``run_entry``.
"""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from src.rehearse.plan import REPO, Entry, to_standins

SHRINK = ("--trainer.limit_train_batches=1", "--trainer.max_steps=1", "--trainer.limit_test_batches=1")
RESUME_STEPS = 2  # killed when step 1 starts: the epoch-0 checkpoint exists, the run is unfinished
SHRINK_NOTE = ("shrunk: backbone width 64 (random-init twin, same depth/patch/input/taps/activation), "
               "1 train batch per epoch, max_steps {steps}, 1 test batch; everything else as resolved for real")


@dataclass
class Outcome:
    """What one entry did: ``status`` is ``ok`` or ``FAILED``; ``note`` says why or what was shrunk."""

    name: str
    status: str
    seconds: float
    note: str
    log: Path
    cpu_seconds: float = 0.0  # user + system time of the commands (load-independent, unlike seconds)


def make_command(entry: Entry, standins: Path, extra: dict[str, str] | None = None,
                 steps: int = 1, extra_args: Sequence[str] = ()) -> list[str]:
    """The ``make`` argv of ``entry`` on the stand-ins; the limit flags and ``extra_args`` end ``ARGS``."""
    variables = {key: to_standins(value, standins) for key, value in entry.variables.items()}
    shrink = [*SHRINK[:1], f"--trainer.max_steps={steps}", *SHRINK[2:]]
    args = shlex.split(variables.pop("ARGS", ""))
    variables.update(extra or {})
    argv = ["make", "--no-print-directory", entry.target, *(f"{k}={v}" for k, v in variables.items())]
    return [*argv, "ARGS=" + shlex.join([*args, *shrink, *extra_args])]


def check_rows(entry: Entry, standins: Path) -> list[str]:
    """Compose and type-check every row of an ablation entry's table; returns the row names.

    Uses the launcher's own composition, so a row that would stop a real ``make ablate`` halfway
    through its table stops here before anything runs.
    """
    from src.tables.spec import load_ablation, to_cli

    var = {key: to_standins(value, standins) for key, value in entry.variables.items()}
    spec = load_ablation(var["METHOD"], var["TABLE"])
    for k in spec.ks:
        for row in spec.rows:
            argv = ["--method", var["METHOD"], "--profile", var.get("PROFILE", "quick"),
                    "--ablation-table", var["TABLE"], "--ablation-row", row.name]
            for key, option in (("DATA", "--data"), ("DATA_ROOT", "--data-root"), ("AUX", "--aux"),
                                ("AUX_ROOT", "--aux-root")):
                argv += [option, var[key]] if key in var else []
            argv += ["--k", str(k)] if k is not None else []
            argv += ["--", *to_cli(row.overrides), *shlex.split(var.get("ARGS", ""))]
            check_launch(argv)
    return [row.name for row in spec.rows]


def check_launch(argv: list[str]) -> None:
    """What ``python -m src.run ARGV`` checks before it makes a run directory: options, the composed
    config and its types against the model class (no model is built)."""
    from src.launch.compose import compose, model_class
    from src.launch.execute import check_config
    from src.launch.options import parse_args, validate

    args = parse_args(argv)
    validate(args)
    files, layers, overrides = compose(args, 0)
    check_config([*(a for f in files for a in ("--config", str(f))), *overrides], model_class(layers, args.overrides))


def launcher_argv(entry: Entry, standins: Path) -> list[str]:
    """``python -m src.run`` argv equivalent to a ``make train`` entry (what the Makefile passes)."""
    var = {key: to_standins(value, standins) for key, value in entry.variables.items()}
    options = {"METHOD": "--method", "PROFILE": "--profile", "DATA": "--data", "DATA_ROOT": "--data-root",
               "AUX": "--aux", "AUX_ROOT": "--aux-root", "K": "--k", "SEED": "--seed", "DEVICES": "--devices"}
    unknown = sorted(set(var) - set(options) - {"ARGS"})
    if unknown:
        raise ValueError(f"{entry.name}: make variables {unknown} have no launcher option")
    argv = [a for key, option in options.items() if key in var for a in (option, var[key])]
    return [*argv, "--", *shlex.split(var.get("ARGS", ""))]


def check_entry(entry: Entry, standins: Path) -> Outcome:
    """Resolve and type-check an entry's config(s) without building a model (seconds, not minutes)."""

    started = time.time()
    try:
        if entry.target == "ablate":
            note = f"{len(check_rows(entry, standins))} rows checked"
        elif entry.target == "train":
            check_launch(launcher_argv(entry, standins))
            note = "config checked"
        else:
            return Outcome(entry.name, "ok", time.time() - started, "not checked (compare runs only)", Path())
    except Exception as err:  # noqa: BLE001 - reported in the table
        return Outcome(entry.name, "FAILED", time.time() - started, f"{type(err).__name__}: {err}"[:300], Path())
    except SystemExit as err:
        return Outcome(entry.name, "FAILED", time.time() - started, f"config rejected (exit {err.code})", Path())
    return Outcome(entry.name, "ok", time.time() - started, note, Path())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("a") as handle:
        handle.write(f"$ {shlex.join(argv)}\n")
        handle.flush()
        return subprocess.run(argv, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT).returncode


def _newest_run(runs_root: Path, before: set[Path]) -> Path | None:
    fresh = [p for p in runs_root.iterdir() if p.is_dir() and p not in before and (p / "launch.json").is_file()]
    return max(fresh, key=lambda p: p.stat().st_mtime) if fresh else None


def _tail(log: Path, lines: int = 3) -> str:
    text = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(text[-lines:])[-300:]


def run_entry(entry: Entry, standins: Path, workdir: Path, extra_args: Sequence[str] = ()) -> Outcome:
    """Run one entry (its ablation rows checked first, or interrupted and resumed); never raises."""
    runs_root = workdir / "runs"
    runs_root.mkdir(parents=True, exist_ok=True)
    log = workdir / "logs" / f"{entry.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ADSUITE_REHEARSAL": "1", "ADSUITE_RUNS_ROOT": str(runs_root), "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1"}
    cpu = _children_cpu()
    outcome = _run_entry(entry, standins, workdir, extra_args, log, env)
    outcome.cpu_seconds = _children_cpu() - cpu
    return outcome


def _run_entry(entry: Entry, standins: Path, workdir: Path, extra_args: Sequence[str], log: Path,
               env: dict[str, str]) -> Outcome:
    runs_root = workdir / "runs"
    started = time.time()
    steps = RESUME_STEPS if entry.resume else 1
    note = SHRINK_NOTE.format(steps=steps) + (f"; also {' '.join(extra_args)}" if extra_args else "")
    try:
        extra = {}
        if entry.rows == "first":
            rows = check_rows(entry, standins)
            extra["ROWS"] = rows[0]
            note += f"; {len(rows)} rows checked, row {rows[0]} run"
        before = set(runs_root.iterdir())
        # The fault-injection callback of the reliability tests kills the run at step 1.
        kill_env = {**env, "ADSUITE_CALLBACKS": "tests.faults.FaultInjection",
                    "ADSUITE_FAULT_KILL_AT_STEP": "1"} if entry.resume else env
        code = _run(make_command(entry, standins, extra, steps, extra_args), kill_env, log)
        if entry.resume:
            run_dir = _newest_run(runs_root, before)
            if code == 0 or run_dir is None or not (run_dir / "checkpoints" / "last.ckpt").is_file():
                return Outcome(entry.name, "FAILED", time.time() - started,
                               f"the interrupted run left no checkpoint to resume (exit {code})", log)
            code = _run(["make", "--no-print-directory", "train", f"RESUME={run_dir}"], env, log)
            note += f"; killed at step 1, resumed from {run_dir.name}"
    except Exception as err:  # noqa: BLE001 - one entry's failure is reported, the next still runs
        with log.open("a") as handle:
            handle.write(f"rehearsal error: {type(err).__name__}: {err}\n")
        return Outcome(entry.name, "FAILED", time.time() - started, f"{type(err).__name__}: {err}"[:300], log)
    except SystemExit as err:  # jsonargparse reports a bad row config by exiting
        return Outcome(entry.name, "FAILED", time.time() - started, f"row config rejected (exit {err.code})", log)
    if code != 0:
        return Outcome(entry.name, "FAILED", time.time() - started, f"exit {code}: {_tail(log)}", log)
    return Outcome(entry.name, "ok", time.time() - started, note, log)
