"""``make train``: compose a run's config, make its directory, fit, test, report.

    python -m src.run --method afr [--profile quick|paper] [--data builtin|mvtec|visa|folder]
        [--data-root PATH] [--aux NAME] [--aux-root PATH] [--devices N] [--nodes N] [--k K] [--seed S]
        [--seeds 0,1,2] [--resume RUN_DIR] [--suffix TEXT] [-- LightningCLI overrides ...]

Config layers, later wins: ``experiments/base.yaml``, ``experiments/methods/<m>.yaml`` (the
paper setting), ``experiments/profiles/<profile>.yaml`` and ``profiles/<profile>/<m>.yaml``,
then the options above, then the user's overrides. Methods that train one model per category
(VTFusion's k-shot protocol) run every category of the dataset in one invocation, one
subfolder per category, one ``metrics.json`` for all. The last line printed is
``run: runs/<name>``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import os
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from datamodules.base import DatasetError
from datamodules.protocols import default_aux_dataset
from src.faults import FaultInjection
from src.launch import guards
from src.launch.checkpoints import check_checkpoint
from src.launch.errors import LaunchError, report_error
from src.launch.lock import RunLock
from src.launch.preempt import SIGTERM_EXIT, StopOnSigterm, stopped_message
from src.launch.quiet import LogIntervalCap, quiet_libraries
from src.launch.wandb_setup import sync_hint
from src.pairing import PairingError, preset_file, resolve_aux
from src.rendezvous import launched_outside, shared_dir
from src.runs import RUN_DIR_ENV, atomic_write_json, atomic_write_text, git_sha, is_rank_zero, new_run_dir, read_json
from src.runs import versions as package_versions

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
METHODS = ("clip", "afr", "fb", "vtfusion", "linear")
PROFILES = ("quick", "paper")
DATA = ("builtin", "builtin-A", "builtin-B", "mvtec", "visa", "folder")
SPILL_DIR = "spill"
RUNS_ROOT_ENV = "ADSUITE_RUNS_ROOT"  # default parent of run directories (make rehearse keeps its runs apart)
METRIC_KEYS = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro")


# ---------------------------------------------------------------------- config composition
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make train", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default=None, help=f"one of {', '.join(METHODS)}")
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


LAUNCH_FILE = "launch.json"


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
    if args.method is None:
        raise LaunchError(f"METHOD is required; valid: {', '.join(METHODS)} (or RESUME=<run dir>)")
    if args.method not in METHODS:
        raise LaunchError(f"METHOD={args.method!r} is not a method; valid: {', '.join(METHODS)}")
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
    if args.k is not None and args.k < 1:
        raise LaunchError(f"K={args.k} must be a positive number of shots (1, 2, 4, 8)")
    if args.devices is not None and args.devices < 1:
        raise LaunchError(f"DEVICES={args.devices} must be >= 1")
    if getattr(args, "nodes", None) is not None and args.nodes < 1:
        raise LaunchError(f"NODES={args.nodes} must be >= 1 (the number of machines of the run)")
    if (getattr(args, "nodes", None) or 1) > 1 and not launched_outside():
        raise LaunchError(f"NODES={args.nodes}: start every process with srun or torchrun (one per device on "
                          "each machine); see 'One run on several machines' in docs/runs.md")
    if args.seeds:
        try:
            args.seed_list = [int(s) for s in str(args.seeds).split(",") if s.strip()]
        except ValueError as err:
            raise LaunchError(f"SEEDS={args.seeds!r} must be comma-separated integers, e.g. 0,1,2") from err
        guards.check_seeds(args.seed_list)
    else:
        args.seed_list = None
    try:
        aux = _aux_of(args)
        preset_file(args.method, aux, args.overrides, load_layers(config_files(args.method, args.profile)))
    except PairingError as err:
        raise LaunchError(str(err)) from err
    aux = aux or default_aux_dataset(args.data) or "none"
    trains = args.method != "clip" and args.k is None and args.method != "vtfusion"
    aux_root = args.aux_root or any(o.startswith("--data.init_args.aux_root=") for o in args.overrides)
    if trains and not args.data.startswith("builtin") and aux != "none" and not aux.startswith("builtin") \
            and not aux_root:
        raise LaunchError(
            f"METHOD={args.method} trains on the auxiliary dataset {aux} for DATA={args.data} (cross-dataset "
            f"protocol): give AUX_ROOT=<folder of {aux}> (or AUX=<name> AUX_ROOT=<its folder> for another pairing)"
        )
    if args.resume and not Path(args.resume).is_dir():
        raise LaunchError(f"RESUME={args.resume} is not a run directory")


def config_files(method: str, profile: str, preset: Path | None = None) -> list[Path]:
    """Config layers, later wins; ``preset`` (the direction's ``aux-<dataset>.yaml``) follows the method's YAML."""
    files = [EXPERIMENTS / "base.yaml", EXPERIMENTS / "methods" / f"{method}.yaml", *([preset] if preset else []),
             EXPERIMENTS / "profiles" / f"{profile}.yaml", EXPERIMENTS / "profiles" / profile / f"{method}.yaml"]
    return [f for f in files if f.is_file()]


def _aux_of(args: argparse.Namespace) -> str | None:
    """The run's auxiliary dataset: AUX, an aux_dataset override, or the method's declared pairing."""
    return resolve_aux(args.method, args.data, args.aux, args.overrides, k_shot=args.k is not None)


def load_layers(files: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in files:
        _deep_update(merged, yaml.safe_load(path.read_text()) or {})
    return merged


def _deep_update(target: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def model_class(layers: dict[str, Any], overrides: list[str]) -> type:
    path = layers.get("model", {}).get("class_path", "")
    for item in overrides:
        if item.startswith("--model.class_path="):
            path = item.split("=", 1)[1]
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def launcher_overrides(args: argparse.Namespace, layers: dict[str, Any], seed: int | None) -> list[str]:
    """CLI overrides that implement DATA, AUX, K, SEED and DEVICES."""
    out: list[str] = []
    data_args = layers.get("data", {}).get("init_args", {})
    if args.data == "builtin":
        out.append("--data.init_args.dataset=builtin-B")
    else:
        out.append(f"--data.init_args.dataset={args.data}")
    if args.data_root:
        out.append(f"--data.init_args.root={args.data_root}")
    aux = _aux_of(args)
    if aux is None and training_free(args):
        aux = "none"  # nothing trains: no auxiliary data to read or report
    if aux is not None:
        out.append(f"--data.init_args.aux_dataset={aux}")
    if args.aux_root:
        out.append(f"--data.init_args.aux_root={args.aux_root}")
    if args.k is not None:
        out += ["--data.init_args.protocol=k-shot", f"--data.init_args.k_shot={args.k}"]
        if args.method == "clip":
            out.append("--model.init_args.few_shot=true")
    if seed is not None:
        out += [f"--seed_everything={seed}", f"--data.init_args.seed={seed}"]
    nodes = getattr(args, "nodes", None)  # absent in launch.json of runs made before NODES existed
    if args.devices is not None:
        out.append(f"--trainer.devices={args.devices}")
    if nodes is not None:
        out.append(f"--trainer.num_nodes={nodes}")
    if (args.devices or 1) * (nodes or 1) > 1 and "strategy" not in layers.get("trainer", {}):
        out.append("--trainer.strategy=ddp")
    del data_args
    return out


def training_free(args: argparse.Namespace) -> bool:
    """The zero-shot CLIP baseline fits nothing, so it reads no auxiliary (training) data."""
    return args.method == "clip" and args.k is None


def request_hash(files: list[Path], overrides: list[str]) -> str:
    """Identity of a run's resolved request: the config files' contents plus every override."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    for item in overrides:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------- logging
def make_logger(run_dir: Path, name: str, tags: list[str], config: dict[str, Any]) -> Any:
    """Lightning's WandbLogger, offline without an API key or a reachable host; never prompts."""
    from src.launch.wandb_setup import make_logger as wandb_logger

    return wandb_logger(run_dir, name, tags, config)


# ---------------------------------------------------------------------- one fit + test
def check_config(cli_args: list[str], cls: type | None = None) -> None:
    """Parse and type-check the composed config without building anything (no run directory yet).

    An unknown option, a misspelt class or a value of the wrong type stops here with jsonargparse's
    message, which names the key and the accepted values.
    """
    from src.cli import SuiteCLI, build_cli

    class _ParseOnly(SuiteCLI):
        def instantiate_classes(self) -> None:
            return None

        def _set_seed(self) -> None:  # the real run seeds once; a second "Seed set to" is noise
            return None

    argv = sys.argv
    sys.argv = argv[:1]
    try:
        parsed = build_cli(cli_args, run=False, cli_class=_ParseOnly)
    except SystemExit:
        if cls is not None:
            names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
            print(f"\nvalid --model.init_args options of {cls.__name__}: {', '.join(names)}", file=sys.stderr)
        raise
    finally:
        sys.argv = argv
    guards.check_ranges(parsed.config.as_dict())


def fit_and_test(cli_args: list[str], out_dir: Path, logger: Any, resume_ckpt: str | None) -> dict[str, Any]:
    """Instantiate through LightningCLI, fit when the model trains, test the final weights."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from src.cli import SuiteCLI, build_cli

    # One rolling file, rewritten at the end of every epoch (Lightning writes through a temporary
    # file): what RESUME continues from, and the final trainable weights.
    checkpoint = ModelCheckpoint(dirpath=str(out_dir / "checkpoints"), filename="last", save_top_k=1,
                                 every_n_epochs=1, save_on_train_epoch_end=True, enable_version_counter=False)
    extra = [checkpoint, LogIntervalCap(), StopOnSigterm(), *([fault] if (fault := FaultInjection.from_env()) else [])]
    if is_rank_zero():
        shutil.rmtree(out_dir / SPILL_DIR, ignore_errors=True)  # left by a killed evaluation of this run

    class _Launch(SuiteCLI):
        """Adds this run's directory, logger and checkpointing to whatever the config asks for."""

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
            config = dict(config)
            config["default_root_dir"] = str(out_dir)
            config["logger"] = logger if logger is not None else False
            config["callbacks"] = [*(config.get("callbacks") or []), *callbacks, *extra]
            for callback in config["callbacks"]:
                if type(callback).__name__ == "MetricsCallback" and callback.spill_dir is None:
                    callback.spill_dir = str(out_dir / SPILL_DIR)
            return super()._instantiate_trainer(config, [])

    # LightningCLI warns when it is handed args while sys.argv has some too; DDP's launcher
    # re-executes sys.argv later, so it is restored right after parsing.
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        cli = build_cli(cli_args, run=False, cli_class=_Launch)
    finally:
        sys.argv = argv
    if logger is not None and cli.model.results_meta().get("random_init"):
        logger.experiment.tags = tuple(sorted({*logger.experiment.tags, "random-init"}))
    if is_rank_zero():
        atomic_write_text(out_dir / "config.yaml", cli.parser.dump(cli.config, skip_none=False))
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    started = time.time()
    if resume_ckpt:
        check_checkpoint(resume_ckpt, model.method_name)
    if model.is_trainable:
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_ckpt, weights_only=True)
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics_cb = next((c for c in trainer.callbacks if type(c).__name__ == "MetricsCallback"), None)
    results = dict(getattr(metrics_cb, "results", None) or {})
    results.setdefault("meta", {})["fit_test_wall_s"] = round(time.time() - started, 2)
    return results


def last_checkpoint(run_dir: Path) -> str | None:
    last = run_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


# ---------------------------------------------------------------------- results
def merge_category_results(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One results dict from per-category runs: categories and defect types united, means recomputed."""
    categories: dict[str, Any] = {}
    defect_types: dict[str, Any] = {}
    for part in parts.values():
        categories.update(part.get("categories", {}))
        defect_types.update(part.get("defect_types", {}))
    mean, counts = category_mean(categories)
    meta = dict(next(iter(parts.values()), {}).get("meta", {}))
    meta["n_categories"] = counts
    meta["k_shot_files"] = {c: p.get("meta", {}).get("k_shot_files", {}).get(c) for c, p in parts.items()}
    partial = {c: p["meta"]["partial"] for c, p in parts.items() if p.get("meta", {}).get("partial")}
    if partial:
        meta["partial"] = {"categories": partial}
    return {"mean": mean, "categories": categories, "defect_types": defect_types, "meta": meta}


def category_mean(categories: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    mean: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for key in METRIC_KEYS:
        values = [v[key] for v in categories.values() if v.get(key) is not None]
        counts[key] = len(values)
        mean[key] = sum(values) / len(values) if values else None
    return mean, counts


def partial_banner(partial: dict[str, Any]) -> str:
    """The line printed above the table of a run that did not evaluate every test image."""
    return (f"PARTIAL EVALUATION ({json.dumps(partial, sort_keys=True)}): not every test image was scored; "
            "these numbers are not comparable with a complete run and tables refuse to mix them.")


def format_table(results: dict[str, Any]) -> str:
    """Per-category table of image and pixel metrics in percent, one decimal, with the mean last."""
    cols = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max", "pixel_aupro")
    heads = ("I-AUROC", "I-AP", "I-F1", "P-AUROC", "P-AP", "P-F1", "AUPRO")
    rows = [*results.get("categories", {}).items(), ("mean", results.get("mean", {}))]
    width = max([len(name) for name, _ in rows] + [8])
    lines = [f"{'category':<{width}} " + " ".join(f"{h:>8}" for h in heads)]
    for name, values in rows:
        cells = ["     n/a" if values.get(c) is None else f"{100 * values[c]:8.1f}" for c in cols]
        lines.append(f"{name:<{width}} " + " ".join(cells))
    return "\n".join(lines)


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    from src.metrics.io import write_metrics

    write_metrics(results, run_dir)


# ---------------------------------------------------------------------- the run
def compose(args: argparse.Namespace, seed: int | None) -> tuple[list[Path], dict[str, Any], list[str]]:
    """The config files, their merged content and the overrides of one run."""
    plain = config_files(args.method, args.profile)
    files = config_files(args.method, args.profile,
                         preset_file(args.method, _aux_of(args), args.overrides, load_layers(plain)))
    layers = load_layers(files)
    return files, layers, [*launcher_overrides(args, layers, seed), *args.overrides]


def request_hash_for(argv: list[str]) -> str:
    """The ``request_hash`` that ``python -m src.run <argv>`` records (one seed; no ``--seeds``)."""
    args = parse_args(list(argv))
    validate(args)
    files, _, overrides = compose(args, default_seed(args))
    return request_hash(files, overrides)


def default_seed(args: argparse.Namespace) -> int:
    return 0 if args.seed is None else args.seed


def run_once(args: argparse.Namespace, seed: int | None, run_dir: Path | None = None) -> Path:
    files, layers, overrides = compose(args, seed)
    cli_args = [*(a for f in files for a in ("--config", str(f))), *overrides]
    digest = request_hash(files, overrides)
    guards.check_class_paths(layers, overrides)
    cls = model_class(layers, args.overrides)
    check_config(cli_args, cls)
    resumed_from = None
    if run_dir is None and args.resume:
        run_dir = Path(args.resume)
        resumed_from = str(run_dir)
    if run_dir is None:
        inherited = os.environ.get(RUN_DIR_ENV)
        suffix = "-".join(p for p in (f"k{args.k}" if args.k else None,
                                      f"seed{seed}" if args.seed_list else None,
                                      args.ablation_row or None, args.suffix) if p) or None
        if inherited and not is_rank_zero():
            run_dir = Path(inherited)
        elif launched_outside():  # torchrun/srun: rank 0 makes it, the others are told where it is
            run_dir = shared_dir(args.runs_root, f"run:{digest}:{seed}",
                                 lambda: new_run_dir(args.runs_root, args.method, args.data, suffix))
        else:
            run_dir = new_run_dir(args.runs_root, args.method, args.data, suffix)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    CURRENT_RUN[0] = run_dir
    if not is_rank_zero():
        return _run_in(args, seed, run_dir, layers, overrides, cli_args, digest, cls, resumed_from)
    with RunLock(run_dir):  # a second RESUME of this directory stops here
        return _run_in(args, seed, run_dir, layers, overrides, cli_args, digest, cls, resumed_from)


#: The run directory in progress, for the error report of main().
CURRENT_RUN: list[Path | None] = [None]


def _run_in(args: argparse.Namespace, seed: int | None, run_dir: Path, layers: dict[str, Any],  # noqa: PLR0913
            overrides: list[str], cli_args: list[str], digest: str, cls: type, resumed_from: str | None) -> Path:
    if is_rank_zero() and not resumed_from:
        launch = {k: v for k, v in vars(args).items() if k not in {"resume", "seed_list"}}
        launch["seed"] = seed
        atomic_write_json(run_dir / LAUNCH_FILE, launch)

    random_init = _predict_random_init(layers, args.overrides)
    tags = [args.method, args.profile, args.data, "k-shot" if args.k or "k-shot" in json.dumps(layers) else "zero-shot"]
    tags += ["random-init"] if random_init else []
    tags += [f"table:{args.ablation_table}", f"row:{args.ablation_row}"] if args.ablation_table else []
    wandb_config = {
        "method": args.method, "profile": args.profile, "data": args.data, "seed": seed, "k": args.k,
        "overrides": overrides, "request_hash": digest,
        "ablation": {"table": args.ablation_table, "row": args.ablation_row},
    }
    logger = make_logger(run_dir, run_dir.name, tags, wandb_config) if is_rank_zero() else None
    meta_extra = {
        "profile": args.profile, "data_option": args.data, "request_hash": digest,
        "overrides": overrides, "git_sha": git_sha(REPO), "versions": package_versions(),
        "ablation": {"table": args.ablation_table, "row": args.ablation_row}, "run_dir": str(run_dir),
    }
    if resumed_from:
        meta_extra["resumed_from"] = resumed_from
        _record_resume(run_dir)
    started = time.time()
    try:
        if getattr(cls, "per_category", False) and "--data.init_args.categories" not in " ".join(args.overrides):
            results = _per_category(args, cli_args, run_dir, logger, layers)
        else:
            results = fit_and_test(cli_args, run_dir, logger, last_checkpoint(run_dir) if resumed_from else None)
    except BaseException:
        if is_rank_zero():
            print(f"\nrun failed; partial logs and checkpoints are kept in {run_dir}", file=sys.stderr)
            _finish_wandb(logger)  # a later run in this process must not append to this one
        raise
    if is_rank_zero():
        meta = results.setdefault("meta", {})
        if "wall_s" in meta:
            meta["metrics_wall_s"] = meta.pop("wall_s")
        meta.update(meta_extra)
        data_meta = meta.get("data") or {}
        for key in ("dataset", "seed", "protocol", "image_size"):
            if key in data_meta:
                meta.setdefault(key, data_meta[key])
        meta["wall_s"] = round(time.time() - started, 2)
        meta["random_init"] = bool(meta.get("random_init", random_init))
        if logger is not None:
            meta["wandb_run"] = _wandb_location(logger)
        write_results(run_dir, results)
        print()
        if meta["random_init"]:
            print("RANDOM-INIT backbone: these numbers say nothing about the method.")
        if meta.get("partial"):
            print(partial_banner(meta["partial"]))
        print(format_table(results))
        _finish_wandb(logger)
    return run_dir


def _per_category(args: argparse.Namespace, cli_args: list[str], run_dir: Path, logger: Any,
                  layers: dict[str, Any]) -> dict[str, Any]:
    """One model per category: a subfolder each; an interrupted invocation resumes at the first unfinished one."""
    from datamodules.registry import dataset_categories

    dataset = "builtin-B" if args.data == "builtin" else args.data
    categories = dataset_categories(dataset, args.data_root)
    parts: dict[str, dict[str, Any]] = {}
    for category in categories:
        sub = run_dir / category
        done = sub / "metrics.json"
        if done.is_file():
            parts[category] = read_json(done)
            print(f"[{category}] finished earlier, kept: {done}")
            continue
        sub.mkdir(parents=True, exist_ok=True)
        resume = last_checkpoint(sub)
        print(f"[{category}] {'resuming from ' + resume if resume else 'training'} in {sub}")
        part = fit_and_test([*cli_args, f"--data.init_args.categories=[{category}]"], sub, logger, resume)
        if is_rank_zero():
            write_results(sub, part)
        parts[category] = part
    return merge_category_results(parts)


def _predict_random_init(layers: dict[str, Any], overrides: list[str]) -> bool:
    pretrained = str(layers.get("model", {}).get("init_args", {}).get("pretrained", "auto"))
    for item in overrides:
        if item.startswith("--model.init_args.pretrained="):
            pretrained = item.split("=", 1)[1]
    return pretrained.lower() in {"none"}


def _record_resume(run_dir: Path) -> None:
    log = run_dir / "resumed.log"
    with log.open("a") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} resumed {shlex.join(sys.argv)}\n")


def _wandb_location(logger: Any) -> str | None:
    try:
        experiment = logger.experiment
        return getattr(experiment, "dir", None) and str(Path(experiment.dir).parent)
    except Exception:  # noqa: BLE001 - W&B trouble must not lose the results
        return None


def _finish_wandb(logger: Any) -> None:
    if logger is None:
        return
    location = _wandb_location(logger)
    try:
        import wandb

        wandb.finish()
    except Exception as err:  # noqa: BLE001
        print(f"W&B: could not finish the run cleanly ({err}); results are in metrics.json")
        return
    if hint := sync_hint(location):
        print(hint)


def write_summary(group_dir: Path, runs: list[Path], seeds: list[int]) -> dict[str, Any]:
    """mean and std over seeds of every mean metric and every category metric."""
    results = [read_json(r / "metrics.json") for r in runs]
    summary: dict[str, Any] = {"seeds": seeds, "runs": [str(r) for r in runs], "mean": {}, "std": {},
                               "categories": {}}
    for key in METRIC_KEYS:
        values = [r["mean"].get(key) for r in results if r["mean"].get(key) is not None]
        summary["mean"][key] = statistics.fmean(values) if values else None
        summary["std"][key] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
    for category in results[0].get("categories", {}):
        cat: dict[str, Any] = {}
        for key in METRIC_KEYS:
            values = [r["categories"].get(category, {}).get(key) for r in results]
            values = [v for v in values if v is not None]
            cat[key] = {"mean": statistics.fmean(values) if values else None,
                        "std": statistics.stdev(values) if len(values) > 1 else None}
        summary["categories"][category] = cat
    summary["meta"] = {k: results[0]["meta"].get(k) for k in ("method", "dataset", "backbone", "random_init")}
    atomic_write_json(group_dir / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    """``make train``: exit 0 with results, 2 for a bad request, 143 when stopped by SIGTERM, else 1."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    quiet_libraries()
    args = parse_args(argv)
    CURRENT_RUN[0] = None
    try:
        args = restore_resumed(args)
        validate(args)
        return _launch(args)
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


def _launch(args: argparse.Namespace) -> int:
    if args.seed_list:
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
            summary = write_summary(group, runs, args.seed_list)
            print("\nmean ± std over seeds " + ",".join(map(str, args.seed_list)) + ":")
            for key in METRIC_KEYS:
                m, s = summary["mean"][key], summary["std"][key]
                print(f"  {key:<12} " + ("n/a" if m is None else f"{100 * m:.1f} ± {100 * (s or 0):.1f}"))
            print(f"run: {_display(group)}")
        return 0
    run_dir = run_once(args, default_seed(args))
    if is_rank_zero():
        print(f"run: {_display(run_dir)}")
    return 0


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
