"""One fit + test through LightningCLI, and the per-category loop of methods with one model per category."""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src.launch import guards
from src.launch.checkpoints import check_checkpoint
from src.launch.preempt import StopOnSigterm
from src.launch.quiet import LogIntervalCap
from src.runs import is_rank_zero, read_json

SPILL_DIR = "spill"
#: Comma-separated ``module.Class`` callbacks added to every run's trainer; a class with a
#: ``from_env()`` classmethod is built by it (``None``: left out). Test machinery such as the
#: fault injection of ``tests/faults.py`` comes in this way, never through the configs.
CALLBACKS_ENV = "ADSUITE_CALLBACKS"


def env_callbacks() -> list[Any]:
    """The callbacks named by ``ADSUITE_CALLBACKS``."""
    found = []
    for path in filter(None, (p.strip() for p in os.environ.get(CALLBACKS_ENV, "").split(","))):
        module, _, name = path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        callback = cls.from_env() if hasattr(cls, "from_env") else cls()
        if callback is not None:
            found.append(callback)
    return found


def _build(cli_args: list[str], cli_class: type) -> Any:
    """``build_cli`` with ``sys.argv`` emptied while it parses.

    LightningCLI warns when it is handed args while sys.argv has some too; DDP's launcher
    re-executes sys.argv later, so it is restored right after parsing.
    """
    from src.cli import build_cli

    argv = sys.argv
    sys.argv = argv[:1]
    try:
        return build_cli(cli_args, run=False, cli_class=cli_class)
    finally:
        sys.argv = argv


def check_config(cli_args: list[str], cls: type | None = None) -> None:
    """Parse and type-check the composed config without building anything (no run directory yet).

    An unknown option, a misspelt class or a value of the wrong type stops here with jsonargparse's
    message, which names the key and the accepted values.
    """
    from src.cli import SuiteCLI

    class _ParseOnly(SuiteCLI):
        def instantiate_classes(self) -> None:
            return None

        def _set_seed(self) -> None:  # the real run seeds once; a second "Seed set to" is noise
            return None

    try:
        parsed = _build(cli_args, _ParseOnly)
    except SystemExit:
        if cls is not None:
            names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
            print(f"\nvalid --model.init_args options of {cls.__name__}: {', '.join(names)}", file=sys.stderr)
        raise
    guards.check_ranges(parsed.config.as_dict())


def _launch_cli(out_dir: Path, logger: Any, extra: list[Any]) -> type:
    from src.cli import SuiteCLI

    class _Launch(SuiteCLI):
        """Adds this run's directory, logger and checkpointing to whatever the config asks for."""

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
            config = dict(config)
            config["default_root_dir"] = str(out_dir)
            config["logger"] = logger if logger is not None else False
            config["callbacks"] = [*(config.get("callbacks") or []), *callbacks, *extra]
            for callback in config["callbacks"]:
                if type(callback).__name__ == "MetricsCallback":
                    callback.write_files = False  # the launcher writes metrics.json, with its metadata
                    if callback.spill_dir is None:
                        callback.spill_dir = str(out_dir / SPILL_DIR)
            return super()._instantiate_trainer(config, [])

    return _Launch


def fit_and_test(cli_args: list[str], out_dir: Path, logger: Any, resume_ckpt: str | None) -> dict[str, Any]:
    """Instantiate through LightningCLI, fit when the model trains, test the final weights."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from src.runs import atomic_write_text

    # One rolling file, rewritten at the end of every epoch (Lightning writes through a temporary
    # file): what RESUME continues from, and the final trainable weights.
    checkpoint = ModelCheckpoint(dirpath=str(out_dir / "checkpoints"), filename="last", save_top_k=1,
                                 every_n_epochs=1, save_on_train_epoch_end=True, enable_version_counter=False)
    extra = [checkpoint, LogIntervalCap(), StopOnSigterm(), *env_callbacks()]
    if is_rank_zero():
        shutil.rmtree(out_dir / SPILL_DIR, ignore_errors=True)  # left by a killed evaluation of this run
    cli = _build(cli_args, _launch_cli(out_dir, logger, extra))
    if logger is not None and cli.model.results_meta().get("random_init"):
        logger.experiment.tags = tuple(sorted({*logger.experiment.tags, "random-init"}))
    if is_rank_zero():
        atomic_write_text(out_dir / "config.yaml", cli.parser.dump(cli.config, skip_none=False))
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    started = time.time()
    if resume_ckpt:
        check_checkpoint(resume_ckpt, model.method_name)
    if model.is_trainable and takes_steps(trainer):
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_ckpt, weights_only=True)
    trainer.test(model, datamodule=datamodule, verbose=False)
    metrics_cb = next((c for c in trainer.callbacks if type(c).__name__ == "MetricsCallback"), None)
    results = dict(getattr(metrics_cb, "results", None) or {})
    meta = results.setdefault("meta", {})
    meta["fit_test_wall_s"] = round(time.time() - started, 2)
    # An evaluation of a trainable model that took no optimiser step (limit_train_batches=0, the
    # documented "before training" run) must say so wherever its figures appear.
    meta["trained_steps"] = int(trainer.global_step) if model.is_trainable else None
    return results


def takes_steps(trainer: Any) -> bool:
    """False when the trainer is limited to no optimiser step (the documented untrained evaluation).

    Such a run skips ``fit``: it would build the training loader, and an evaluation-only run has
    no auxiliary dataset to build it from.
    """
    return not (trainer.limit_train_batches == 0 or trainer.max_epochs == 0 or trainer.max_steps == 0)


def last_checkpoint(run_dir: Path) -> str | None:
    last = run_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def per_category(dataset: str, data_root: str | None, cli_args: list[str], run_dir: Path, logger: Any,
                 write: Callable[[Path, dict[str, Any]], None]) -> dict[str, dict[str, Any]]:
    """One model per category, a subfolder each (its own ``metrics.json``); an interrupted invocation
    resumes at the first unfinished category. Returns ``{category: results}``."""
    from datamodules.registry import dataset_categories

    parts: dict[str, dict[str, Any]] = {}
    for category in dataset_categories(dataset, data_root):
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
            write(sub, part)
        parts[category] = part
    return parts
