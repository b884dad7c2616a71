"""``make train``'s options: the command line, RESUME's saved options, and their validation."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from datamodules.protocols import default_aux_dataset
from src import registry
from src.launch import guards
from src.launch.compose import REPO, aux_of, config_files, evaluation_only, load_layers, method_preset
from src.launch.errors import LaunchError
from src.pairing import PairingError
from src.rendezvous import launched_outside

PROFILES = ("quick", "paper")
DATA = ("builtin", "builtin-A", "builtin-B", "mvtec", "visa", "folder")
RUNS_ROOT_ENV = "ADSUITE_RUNS_ROOT"  # default parent of run directories (make rehearse keeps its runs apart)
LAUNCH_FILE = "launch.json"
USAGE = """``make train``: compose a run's config, make its directory, fit, test, report.

    python -m src.run --method <m> [--profile quick|paper] [--data builtin|mvtec|visa|folder]
        [--data-root PATH] [--aux NAME] [--aux-root PATH] [--devices N] [--nodes N] [--k K] [--seed S]
        [--seeds 0,1,2] [--resume RUN_DIR] [--suffix TEXT] [-- LightningCLI overrides ...]

The last line printed is ``run: runs/<name>``.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make train", description=USAGE, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default=None, help=f"one of {', '.join(registry.names())}")
    parser.add_argument("--profile", default="quick", help="quick (built-in benchmark, small backbone) or paper")
    parser.add_argument("--data", default=None, help=f"evaluated dataset: {', '.join(DATA)}")
    parser.add_argument("--data-root", default=None, help="folder of the evaluated dataset")
    parser.add_argument("--aux", default=None, help="auxiliary training dataset (cross-dataset protocol)")
    parser.add_argument("--aux-root", default=None, help="folder of the auxiliary dataset")
    parser.add_argument("--devices", type=int, default=None, help="number of devices (DDP when > 1)")
    parser.add_argument("--nodes", type=int, default=None, help="number of machines (Lightning num_nodes); "
                        "every process is started by srun or torchrun")
    parser.add_argument("--k", type=int, default=None, help="k-shot protocol with k shots per category")
    parser.add_argument("--seed", type=int, default=None, help="seed of this run")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds: one run each plus summary.json")
    parser.add_argument("--resume", default=None, help="run directory of an interrupted run to continue")
    parser.add_argument("--suffix", default=None, help="extra text at the end of the run directory name")
    parser.add_argument("--runs-root", default=os.environ.get(RUNS_ROOT_ENV) or str(REPO / "runs"),
                        help=f"parent folder of run directories (default ${RUNS_ROOT_ENV} or runs/)")
    parser.add_argument("--ablation-table", default="", help=argparse.SUPPRESS)
    parser.add_argument("--ablation-row", default="", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="LightningCLI overrides, e.g. --model.init_args.mpfa_kernel=1")
    args, unknown = parser.parse_known_args(argv)
    args.overrides = [*args.overrides, *unknown]
    return args


def restore_resumed(args: argparse.Namespace) -> argparse.Namespace:
    """With ``--resume RUN``, the interrupted run's own options (saved in ``RUN/launch.json``) win."""
    if not args.resume:
        return args
    saved = Path(args.resume) / LAUNCH_FILE
    if not saved.is_file():
        raise LaunchError(f"RESUME={args.resume}: {saved} not found; is this a run directory made by make train?")
    stored = json.loads(saved.read_text())
    guards.check_resume(Path(args.resume), vars(args), vars(parse_args([])), stored)
    print(f"resuming {args.resume} with the options it was started with ({saved})", file=sys.stderr)
    merged = argparse.Namespace(**{**vars(args), **stored})
    merged.resume = args.resume
    return merged


def validate(args: argparse.Namespace) -> None:
    """Check every option (one-line ``LaunchError`` naming it); fills ``args.data`` and ``args.seed_list``."""
    if args.method is None:
        raise LaunchError(f"METHOD is required; valid: {', '.join(registry.names())} (or RESUME=<run dir>)")
    try:
        spec = registry.get(args.method)
    except registry.RegistryError as err:
        raise LaunchError(str(err)) from err
    if args.profile not in PROFILES:
        raise LaunchError(f"PROFILE={args.profile!r} is not a profile; valid: {', '.join(PROFILES)}")
    if args.data is None:
        args.data = "builtin" if args.profile == "quick" else "mvtec"
    if args.data not in DATA:
        raise LaunchError(f"DATA={args.data!r} is not a dataset; valid: {', '.join(DATA)}")
    if not args.data.startswith("builtin"):
        if not args.data_root:
            raise LaunchError(f"DATA={args.data} needs DATA_ROOT=<dataset folder>, e.g. DATA_ROOT=/data/{args.data}")
        if not Path(args.data_root).is_dir():
            raise LaunchError(f"DATA_ROOT={args.data_root} does not exist or is not a folder")
    if args.aux_root and not Path(args.aux_root).is_dir():
        raise LaunchError(f"AUX_ROOT={args.aux_root} does not exist or is not a folder")
    _check_counts(args)
    args.seed_list = _seed_list(args.seeds)
    _check_aux(args, spec.trains_zero_shot(args.k) and not evaluation_only(args.method, args.overrides))
    if args.resume and not Path(args.resume).is_dir():
        raise LaunchError(f"RESUME={args.resume} is not a run directory")


def _check_counts(args: argparse.Namespace) -> None:
    if args.k is not None and args.k < 1:
        raise LaunchError(f"K={args.k} must be a positive number of shots (1, 2, 4, 8)")
    if args.devices is not None and args.devices < 1:
        raise LaunchError(f"DEVICES={args.devices} must be >= 1")
    if getattr(args, "nodes", None) is not None and args.nodes < 1:
        raise LaunchError(f"NODES={args.nodes} must be >= 1 (the number of machines of the run)")
    if (getattr(args, "nodes", None) or 1) > 1 and not launched_outside():
        raise LaunchError(f"NODES={args.nodes}: start every process with srun or torchrun (one per device on "
                          "each machine); see 'One run on several machines' in docs/runs.md")


def _seed_list(seeds: str | None) -> list[int] | None:
    if not seeds:
        return None
    try:
        found = [int(s) for s in str(seeds).split(",") if s.strip()]
    except ValueError as err:
        raise LaunchError(f"SEEDS={seeds!r} must be comma-separated integers, e.g. 0,1,2") from err
    guards.check_seeds(found)
    return found


def _check_aux(args: argparse.Namespace, trains: bool) -> None:
    """The pairing resolves, and a method training on a non-built-in auxiliary dataset is told where it is."""
    try:
        aux = aux_of(args)
        method_preset(args, load_layers(config_files(args.method, args.profile)))
    except PairingError as err:
        raise LaunchError(str(err)) from err
    aux = aux or default_aux_dataset(args.data) or "none"
    aux_root = args.aux_root or any(o.startswith("--data.init_args.aux_root=") for o in args.overrides)
    if trains and not args.data.startswith("builtin") and aux != "none" and not aux.startswith("builtin") \
            and not aux_root:
        raise LaunchError(
            f"METHOD={args.method} trains on the auxiliary dataset {aux} for DATA={args.data} (cross-dataset "
            f"protocol): give AUX_ROOT=<folder of {aux}> (or AUX=<name> AUX_ROOT=<its folder> for another pairing)"
        )


def default_seed(args: argparse.Namespace) -> int:
    return 0 if args.seed is None else args.seed

