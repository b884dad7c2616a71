"""The launcher's error type and how an error reaches the user: one line, plus a log with the traceback."""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path


class LaunchError(ValueError):
    """A launcher option is invalid; raised before any heavy work starts."""


ERROR_LOG = "error.log"


def report_error(err: BaseException, log_dir: Path | None, fallback_dir: Path) -> Path:
    """Print ``error: <first line>`` and where the full traceback went; returns the log's path.

    The log goes into the run directory when one exists (next to the partial logs), else into
    ``fallback_dir`` (the runs root), so that a failure before the run directory still leaves it.
    """
    folder = log_dir if log_dir is not None and log_dir.is_dir() else fallback_dir
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / ERROR_LOG
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n")
        handle.write("".join(traceback.format_exception(err)))
    print(f"error: {one_line(err)}", file=sys.stderr)
    print(f"(full traceback in {log})", file=sys.stderr)
    return log


def one_line(err: BaseException) -> str:
    """The exception's message on one line, prefixed by its type unless it is the suite's own."""
    text = " ".join(str(err).split()) or type(err).__name__
    own = type(err).__module__.startswith(("src.", "datamodules."))
    return text if own or isinstance(err, LaunchError) else f"{type(err).__name__}: {text}"
