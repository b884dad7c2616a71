"""One run directory for all processes of a run started by an outside launcher (torchrun, srun).

``make train DEVICES=2`` on one machine starts the other ranks itself (Lightning's launcher), and
they inherit the run directory through ``ADSUITE_RUN_DIR``. ``torchrun --nnodes 2`` or
``srun --ntasks-per-node 8`` start every process independently, on several machines: there is no
parent to inherit from. Global rank 0 then creates the directory and leaves a pointer to it in
``<runs root>/.launch/<key>.json`` on the shared filesystem; every other rank waits for that
pointer. The key is the launch's own identity (torchrun's run id and rendezvous address, or
SLURM's job and step ids) plus what the directory is for, so two launches never meet.

Public API: ``global_rank``, ``launched_outside``, ``launch_identity``, ``shared_dir``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

TIMEOUT_ENV = "ADSUITE_RENDEZVOUS_TIMEOUT"
POINTERS = ".launch"
#: A pointer older than this process by more than the skew is an earlier launch's, never ours: the
#: processes of one launch start within seconds of each other; an earlier launch lasted a whole run.
_STARTED = time.time()
START_SKEW_S = 300.0


def _slurm_tasks() -> int:
    try:
        return int(os.environ.get("SLURM_NTASKS", "1"))
    except ValueError:
        return 1


def launched_outside() -> bool:
    """Was this process started by torchrun or by a multi-task srun (one process per rank)?"""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("SLURM_PROCID" in os.environ and _slurm_tasks() > 1)


def global_rank() -> int:
    """This process's global rank as the outside launcher set it (0 when there is none)."""
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ and (key != "SLURM_PROCID" or _slurm_tasks() > 1):
            return int(os.environ[key])
    return 0


def launch_identity() -> str:
    """A string shared by every process of this launch and by no other launch."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        keys = ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT", "SLURM_JOB_ID")
    else:
        keys = ("SLURM_JOB_ID", "SLURM_STEP_ID", "SLURM_RESTART_COUNT")
    return "|".join(f"{k}={os.environ.get(k, '')}" for k in keys)


def _pointer(runs_root: Path, purpose: str) -> Path:
    digest = hashlib.sha256(f"{launch_identity()}|{purpose}".encode()).hexdigest()[:20]
    return Path(runs_root) / POINTERS / f"{digest}.json"


def shared_dir(runs_root: str | Path, purpose: str, make: Callable[[], Path], timeout_s: float | None = None) -> Path:
    """Rank 0: ``make()`` the directory and publish it; other ranks: wait for it and return it.

    Raises ``TimeoutError`` naming the pointer file when rank 0 has not published in time (rank 0
    failed before making the directory, or the runs root is not on a filesystem all nodes share).
    """
    pointer = _pointer(Path(runs_root), purpose)
    if global_rank() == 0:
        path = make()
        from src.runs import atomic_write_json

        atomic_write_json(pointer, {"run_dir": str(path), "identity": launch_identity(), "purpose": purpose,
                                    "created": time.time()})
        return path
    timeout_s = float(os.environ.get(TIMEOUT_ENV, 900)) if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            data = json.loads(pointer.read_text())
        except (OSError, json.JSONDecodeError):
            data = None  # not written yet (or being replaced atomically): wait
        fresh = data and float(data.get("created", 0)) >= _STARTED - START_SKEW_S
        if fresh and data.get("identity") == launch_identity() and data.get("purpose") == purpose:
            path = Path(data["run_dir"])
            if path.is_dir():
                return path
        time.sleep(0.2)
    raise TimeoutError(f"rank {global_rank()}: no run directory from rank 0 after {timeout_s:.0f} s (waited for "
                       f"{pointer}); is RUNS_ROOT on a filesystem shared by every node? ({TIMEOUT_ENV} sets the wait)")
