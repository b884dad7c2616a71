"""One process per run directory: an exclusive ``flock`` on ``<run>/.lock`` held for the whole run.

Two ``make train RESUME=<run>`` started together would both train into the same checkpoint and
results; the second now stops at once. The lock dies with its process (a ``kill -9`` frees it),
so a stale ``.lock`` file never blocks a later resume.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from src.launch.errors import LaunchError

LOCK_FILE = ".lock"


class RunLock:
    """Context manager: ``with RunLock(run_dir): ...`` or raises :class:`LaunchError` when taken."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LaunchError(
                f"{self.path.parent} is in use by another process (pid {holder}); wait for it to finish "
                "or stop it, then RESUME again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
