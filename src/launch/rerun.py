"""``python -m src test --config runs/<name>/config.yaml``: score the run's trained weights, elsewhere.

A run directory's ``config.yaml`` holds the resolved config but no weights. :func:`prepare`
rewrites the raw CLI's arguments so that

* the run's ``checkpoints/last.ckpt`` is loaded (``--ckpt_path``) unless one is given; a method
  that trains refuses to be scored without weights (:func:`require_weights`);
* outputs (``metrics.json``, ``figures/``, logs) go to a NEW run directory next to the original,
  with ``rerun.json`` naming the source run and checkpoint; nothing lands in the current folder
  and the original results are never rewritten;
* checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from src.launch.checkpoints import read_checkpoint
from src.launch.errors import LaunchError
from src.runs import RUN_DIR_ENV, atomic_write_json, new_run_dir

SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _option(argv: list[str], name: str) -> list[str]:
    values = []
    for i, item in enumerate(argv):
        if item == name and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif item.startswith(name + "="):
            values.append(item.split("=", 1)[1])
    return values


def source_run(argv: list[str]) -> Path | None:
    """The run directory whose ``config.yaml`` is among the ``--config`` files, if any."""
    for config in _option(argv, "--config"):
        folder = Path(config).resolve().parent
        if (folder / "launch.json").is_file() or (folder / "checkpoints").is_dir():
            return folder
    return None


def prepare(argv: list[str], runs_root: Path) -> tuple[list[str], Path | None]:
    """The arguments to run and the new run directory (None when the command is not a subcommand)."""
    if not argv or argv[0] not in SUBCOMMANDS:
        return argv, None
    source = source_run(argv)
    out = list(argv)
    ckpts = _option(argv, "--ckpt_path")
    if not ckpts and source is not None and (source / "checkpoints" / "last.ckpt").is_file():
        ckpts = [str(source / "checkpoints" / "last.ckpt")]
        out.append(f"--ckpt_path={ckpts[0]}")
    if ckpts and ckpts[-1].lower() not in ("null", "none"):
        read_checkpoint(ckpts[-1])  # a damaged file fails here, naming it
    if argv[0] != "fit" and not _option(argv, "--weights_only"):
        out.append("--weights_only=true")
    new_dir = None
    if not _option(argv, "--trainer.default_root_dir"):
        launch = _read(source / "launch.json") if source is not None else {}
        parent = source.parent if source is not None else runs_root
        new_dir = new_run_dir(parent, str(launch.get("method") or "cli"), str(launch.get("data") or ""),
                              f"{argv[0]}-of-{source.name}" if source is not None else argv[0])
        out.append(f"--trainer.default_root_dir={new_dir}")
        atomic_write_json(new_dir / "rerun.json", {
            "command": argv[0], "source_run": str(source) if source else None,
            "ckpt_path": ckpts[-1] if ckpts else None, "argv": sys.argv,
        })
    return out, new_dir


def require_weights(model: object, ckpt_path: str | None, subcommand: str) -> None:
    """A trainable model is scored only with trained weights (``--ckpt_path``)."""
    if subcommand in ("validate", "test", "predict") and getattr(model, "is_trainable", False) and not ckpt_path:
        raise LaunchError(
            f"`{subcommand}` of {type(model).__name__}, which trains, without --ckpt_path would score untrained "
            "weights; pass --ckpt_path=runs/<name>/checkpoints/last.ckpt (or --config runs/<name>/config.yaml, "
            "which finds it)"
        )


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


__all__ = ["RUN_DIR_ENV", "prepare", "require_weights", "source_run"]
