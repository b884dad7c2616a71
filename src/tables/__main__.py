"""Command line of the tables: ``make ablate``, ``make table``, ``make compare``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from src import registry
from src.launch.options import RUNS_ROOT_ENV
from src.tables.cluster import ClusterOptions
from src.tables.launch import RunFailedError, ablate, compare, rebuild
from src.tables.records import PartialRunError
from src.tables.report import publish
from src.tables.spec import REPO, SpecError

LAUNCHERS = ("local", "slurm", "submitit-local")


def _seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as err:
        raise SpecError(f"SEEDS={text!r} must be comma-separated integers, e.g. 0,1,2") from err


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _cluster(args: argparse.Namespace, runs_root: Path) -> ClusterOptions | None:
    """The submitit options of LAUNCHER=slurm|submitit-local; None for this machine."""
    if args.launcher == "local":
        return None
    if args.jobs != 1 or args.gpus:
        raise SpecError(f"JOBS/GPUS apply to LAUNCHER=local; with LAUNCHER={args.launcher} use "
                        "GPUS_PER_JOB and ARRAY_PARALLELISM")
    options = ClusterOptions(folder=runs_root / "tables" / "submitit" / f"{args.method}-{args.table}",
                             cluster="slurm" if args.launcher == "slurm" else "local", partition=args.partition,
                             gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job, time_min=args.time,
                             array_parallelism=args.array_parallelism,
                             poll_s=10.0 if args.launcher == "slurm" else 2.0)
    options.validate()
    return options


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m src.tables", description=__doc__)
    parser.add_argument("--runs-root", default=os.environ.get(RUNS_ROOT_ENV) or str(REPO / "runs"),
                        help=f"parent folder of run directories (default ${RUNS_ROOT_ENV} or runs/)")
    parser.add_argument("--no-wandb", action="store_true", help="do not log the table to W&B")
    sub = parser.add_subparsers(dest="command", required=True)

    ab = sub.add_parser("ablate", help="run every row of an ablation grid, then write the table")
    ab.add_argument("--method", required=True)
    ab.add_argument("--table", required=True)
    ab.add_argument("--profile", default="quick")
    ab.add_argument("--seeds", default=None, help="comma-separated seeds; mean ± std per row")
    ab.add_argument("--data", default=None)
    ab.add_argument("--data-root", default=None)
    ab.add_argument("--aux", default=None, help="auxiliary training dataset (default: the method's pairing)")
    ab.add_argument("--aux-root", default=None, help="folder of the auxiliary dataset")
    ab.add_argument("--rows", default=None, help="comma-separated rows to run (default: all)")
    ab.add_argument("--jobs", type=int, default=1, help="rows run at once on this machine (LAUNCHER=local)")
    ab.add_argument("--gpus", default=None, help="comma-separated GPU ids split evenly over the JOBS, e.g. 0,1,2,3")
    ab.add_argument("--launcher", default="local", choices=LAUNCHERS,
                    help="local: this machine (JOBS); slurm: one submitit job per run; "
                         "submitit-local: the same jobs with submitit's local executor")
    ab.add_argument("--partition", default=None, help="SLURM partition")
    ab.add_argument("--gpus-per-job", type=int, default=1, help="GPUs per SLURM job")
    ab.add_argument("--cpus-per-job", type=int, default=None, help="CPUs per SLURM job")
    ab.add_argument("--time", type=int, default=240, help="time limit per job, minutes")
    ab.add_argument("--array-parallelism", type=int, default=32, help="SLURM jobs of the array running at once")

    tb = sub.add_parser("table", help="rebuild ablation tables from run directories alone")
    tb.add_argument("--method", default=None)
    tb.add_argument("--table", default=None)

    db = sub.add_parser("dashboard", help="publish the W&B report of written tables (needs a W&B API key)")
    db.add_argument("--method", default=None)
    db.add_argument("--table", default=None)

    cp = sub.add_parser("compare", help="methods side by side under one protocol")
    cp.add_argument("--profile", default="quick")
    compared = "; ".join(f"{p}: {', '.join(registry.compared(p))}" for p in registry.protocols())
    cp.add_argument("--protocol", default="zero-shot", help=f"the methods each protocol compares ({compared})")
    cp.add_argument("--k", type=int, default=None, help="shots for the k-shot protocol (default 2)")
    cp.add_argument("--data", default=None, help="comma-separated datasets, e.g. mvtec,visa")
    cp.add_argument("--data-root", default=None, help="comma-separated folders, one per dataset")
    cp.add_argument("--methods", default=None, help="comma-separated subset of the protocol's methods")
    cp.add_argument("--aux", default=None, help="comma-separated auxiliary datasets, one per dataset")
    cp.add_argument("--aux-root", default=None, help="comma-separated auxiliary folders, one per dataset")
    for p in (ab, cp):
        p.add_argument("overrides", nargs="*", help="LightningCLI overrides for every run (after --)")
    args, unknown = parser.parse_known_args(argv)
    if args.command in {"table", "dashboard"} and unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command not in {"table", "dashboard"}:
        args.overrides = [o for o in (*args.overrides, *unknown) if o != "--"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs_root = Path(args.runs_root)
    failures: list[str] = []
    try:
        if args.command == "ablate":
            _, failures = ablate(args.method, args.table, args.profile, _seeds(args.seeds), args.data, args.data_root,
                                 runs_root, args.overrides, log=not args.no_wandb, aux=args.aux,
                                 aux_root=args.aux_root, rows=_split(args.rows) or None, jobs=args.jobs,
                                 gpus=_split(args.gpus), cluster=_cluster(args, runs_root))
        elif args.command == "table":
            rebuild(args.method, args.table, runs_root, log=not args.no_wandb)
        elif args.command == "dashboard":
            publish(runs_root, args.method, args.table)
        else:
            _, failures = compare(args.profile, args.protocol, args.k, _split(args.data), _split(args.data_root),
                                  runs_root, args.overrides, _split(args.methods) or None, log=not args.no_wandb,
                                  aux=_split(args.aux), aux_roots=_split(args.aux_root))
    except (SpecError, RunFailedError, PartialRunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if failures:
        print("\nruns that did not finish (rerun the same command to retry; finished ones are kept):",
              file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
