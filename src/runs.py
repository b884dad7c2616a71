"""Run directories: new for every run, made by rank 0 only, written atomically.

``runs/<timestamp>-<method>-<data>[-<suffix>]/`` holds ``config.yaml``, ``metrics.json``,
``metrics.csv``, ``checkpoints/``, ``figures/`` and the W&B files. A directory is never reused:
a resumed run continues in the interrupted run's own directory and records that it did.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from src.metrics.io import atomic_write_text

RUN_DIR_ENV = "ADSUITE_RUN_DIR"
__all__ = ["atomic_write_json", "atomic_write_text", "new_run_dir", "read_json"]

_SAFE = re.compile(r"[^A-Za-z0-9_.,=+-]+")


def slug(text: str) -> str:
    return _SAFE.sub("-", text).strip("-")


def new_run_dir(root: str | Path, method: str, data: str, suffix: str | None = None) -> Path:
    """Create and return a fresh run directory; never returns an existing one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = "-".join(slug(p) for p in (stamp, method, data, suffix) if p)
    for attempt in range(1000):
        path = root / (base if attempt == 0 else f"{base}-{attempt + 1}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"Could not create a new run directory under {root} (1000 names taken)")


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def git_sha(cwd: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    sha = out.stdout.strip()
    if not sha:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return f"{sha}-dirty" if dirty else sha


def versions() -> dict[str, str]:
    import lightning
    import numpy
    import open_clip
    import torch
    import torchmetrics

    out = {"torch": torch.__version__, "lightning": lightning.__version__, "open_clip": open_clip.__version__,
           "torchmetrics": torchmetrics.__version__, "numpy": numpy.__version__}
    try:
        import wandb

        out["wandb"] = wandb.__version__
    except ImportError:
        pass
    return out


def is_rank_zero() -> bool:
    """Global rank 0: also under ``srun``, which sets ``SLURM_PROCID`` but none of the torch variables."""
    from src.rendezvous import global_rank

    return global_rank() == 0 and all(os.environ.get(k, "0") == "0" for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))
