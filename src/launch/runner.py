"""``make train`` from options to ``run: runs/<name>``: the run directory, one run or one per seed."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from datamodules.base import DatasetError
from src import registry
from src.launch import guards
from src.launch.compose import REPO, compose, model_class, predict_random_init, request_hash
from src.launch.errors import LaunchError, report_error
from src.launch.execute import check_config, fit_and_test, last_checkpoint, per_category
from src.launch.lock import RunLock
from src.launch.options import LAUNCH_FILE, default_seed, parse_args, restore_resumed, validate
from src.launch.preempt import SIGTERM_EXIT, stopped_message
from src.launch.quiet import quiet_libraries
from src.launch.results import (
    finish_meta,
    merge_category_results,
    print_results,
    print_summary,
    write_results,
    write_summary,
)
from src.launch.tracking import finish_wandb, make_logger, run_tags, wandb_config, wandb_location
from src.rendezvous import launched_outside, shared_dir
from src.runs import RUN_DIR_ENV, atomic_write_json, git_sha, is_rank_zero, new_run_dir
from src.runs import versions as package_versions

#: The run directory in progress, for the error report of main().
CURRENT_RUN: list[Path | None] = [None]


def request_hash_for(argv: list[str]) -> str:
    """The ``request_hash`` that ``python -m src.run <argv>`` records (one seed; no ``--seeds``)."""
    args = parse_args(list(argv))
    validate(args)
    files, _, overrides = compose(args, default_seed(args))
    return request_hash(files, overrides)


def _new_dir(args: argparse.Namespace, seed: int | None, digest: str) -> Path:
    inherited = os.environ.get(RUN_DIR_ENV)
    suffix = "-".join(p for p in (f"k{args.k}" if args.k else None, f"seed{seed}" if args.seed_list else None,
                                  args.ablation_row or None, args.suffix) if p) or None
    if inherited and not is_rank_zero():
        return Path(inherited)
    if launched_outside():  # torchrun/srun: rank 0 makes it, the others are told where it is
        return shared_dir(args.runs_root, f"run:{digest}:{seed}",
                          lambda: new_run_dir(args.runs_root, args.method, args.data, suffix))
    return new_run_dir(args.runs_root, args.method, args.data, suffix)


def run_once(args: argparse.Namespace, seed: int | None, run_dir: Path | None = None) -> Path:
    files, layers, overrides = compose(args, seed)
    cli_args = [*(a for f in files for a in ("--config", str(f))), *overrides]
    digest = request_hash(files, overrides)
    guards.check_class_paths(layers, overrides)
    check_config(cli_args, model_class(layers, args.overrides))
    resumed_from = None
    if run_dir is None and args.resume:
        run_dir = Path(args.resume)
        resumed_from = str(run_dir)
    run_dir = run_dir or _new_dir(args, seed, digest)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    CURRENT_RUN[0] = run_dir
    request = (layers, overrides, cli_args, digest)
    if not is_rank_zero():
        return _run_in(args, seed, run_dir, request, resumed_from)
    with RunLock(run_dir):  # a second RESUME of this directory stops here
        return _run_in(args, seed, run_dir, request, resumed_from)


def _meta_extra(args: argparse.Namespace, run_dir: Path, overrides: list[str], digest: str) -> dict[str, Any]:
    return {
        "profile": args.profile, "data_option": args.data, "request_hash": digest,
        "overrides": overrides, "git_sha": git_sha(REPO), "versions": package_versions(),
        "ablation": {"table": args.ablation_table, "row": args.ablation_row}, "run_dir": str(run_dir),
    }


def _execute(args: argparse.Namespace, cli_args: list[str], run_dir: Path, logger: Any,
             resumed_from: str | None) -> dict[str, Any]:
    """Fit + test once, or once per category for a method with one model per category."""
    if registry.get(args.method).per_category and "--data.init_args.categories" not in " ".join(args.overrides):
        dataset = "builtin-B" if args.data == "builtin" else args.data
        parts = per_category(dataset, args.data_root, cli_args, run_dir, logger, write_results)
        return merge_category_results(parts)
    return fit_and_test(cli_args, run_dir, logger, last_checkpoint(run_dir) if resumed_from else None)


def _run_in(args: argparse.Namespace, seed: int | None, run_dir: Path,
            request: tuple[dict[str, Any], list[str], list[str], str], resumed_from: str | None) -> Path:
    layers, overrides, cli_args, digest = request
    if is_rank_zero() and not resumed_from:
        launch = {k: v for k, v in vars(args).items() if k not in {"resume", "seed_list"}}
        launch["seed"] = seed
        atomic_write_json(run_dir / LAUNCH_FILE, launch)
    random_init = predict_random_init(layers, args.overrides)
    logger = None
    if is_rank_zero():
        logger = make_logger(run_dir, run_dir.name, run_tags(args, layers, random_init),
                             wandb_config(args, seed, overrides, digest))
    meta_extra = _meta_extra(args, run_dir, overrides, digest)
    if resumed_from:
        meta_extra["resumed_from"] = resumed_from
        _record_resume(run_dir)
    started = time.time()
    try:
        results = _execute(args, cli_args, run_dir, logger, resumed_from)
    except BaseException:
        if is_rank_zero():
            print(f"\nrun failed; partial logs and checkpoints are kept in {run_dir}", file=sys.stderr)
            finish_wandb(logger)  # a later run in this process must not append to this one
        raise
    if is_rank_zero():
        meta = finish_meta(results, meta_extra, started, random_init)
        if logger is not None:
            meta["wandb_run"] = wandb_location(logger)
        write_results(run_dir, results)
        print_results(results)
        finish_wandb(logger)
    return run_dir


def _record_resume(run_dir: Path) -> None:
    log = run_dir / "resumed.log"
    with log.open("a") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} resumed {shlex.join(sys.argv)}\n")


def main(argv: list[str] | None = None) -> int:
    """``make train``: exit 0 with results, 2 for a bad request, 143 when stopped by SIGTERM, else 1."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    quiet_libraries()
    args = parse_args(argv)
    CURRENT_RUN[0] = None
    try:
        args = restore_resumed(args)
        validate(args)
        return launch(args)
    except SIGTERMException:
        print(stopped_message(CURRENT_RUN[0]), file=sys.stderr)
        return SIGTERM_EXIT
    except (Exception, SystemExit) as err:  # noqa: BLE001 - one line for the user, the traceback in a log
        if isinstance(err, SystemExit):  # jsonargparse already printed its message
            return err.code if isinstance(err.code, int) else 2
        if isinstance(err, LaunchError) and CURRENT_RUN[0] is None:  # a bad request: nothing to trace
            print(f"error: {err}", file=sys.stderr)
            return 2
        report_error(err, CURRENT_RUN[0], Path(args.runs_root))
        return 2 if isinstance(err, LaunchError | DatasetError) else 1
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """Close DDP's process group before exit.

    Lightning leaves it open; a rank that exits with gloo's threads still running aborts now and then
    (SIGABRT, "terminate called without an active exception"), turning a finished run into a failure.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(args: argparse.Namespace) -> int:
    """One run, or one per seed of SEEDS in a group directory with ``summary.json``; prints ``run: <dir>``."""
    if not args.seed_list:
        run_dir = run_once(args, default_seed(args))
        if is_rank_zero():
            print(f"run: {_display(run_dir)}")
        return 0
    inherited = os.environ.get(RUN_DIR_ENV)
    group = Path(inherited).parent if inherited and not is_rank_zero() else None
    name = "seeds" + "_".join(map(str, args.seed_list))
    if group is None and launched_outside():
        group = shared_dir(args.runs_root, f"group:{args.method}:{name}",
                           lambda: new_run_dir(args.runs_root, args.method, args.data, name))
    if group is None:
        group = new_run_dir(args.runs_root, args.method, args.data, name)
    runs = []
    for seed in args.seed_list:
        sub = group / f"seed{seed}"
        sub.mkdir(exist_ok=not is_rank_zero())
        runs.append(run_once(args, seed, sub))
    if is_rank_zero():
        print_summary(write_summary(group, runs, args.seed_list), args.seed_list)
        print(f"run: {_display(group)}")
    return 0


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
