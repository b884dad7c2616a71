"""A pytest server for ``make slips``: imports the heavy libraries once, forks one pytest per request.

Started by ``slip_runner`` in a staged copy of the tree (``python -c`` with that copy as the working
directory). It imports torch, Lightning, open_clip and the other third-party libraries, never the
suite's own ``src`` / ``datamodules`` / ``tests``: every forked child imports those afresh, so it
sees the file as the runner just wrote it. Saves the 15-20 s of imports per slip on a loaded machine.

Protocol: one JSON request per stdin line, ``{"args": [...], "log": path, "timeout": s}``; one JSON
reply per line on stdout, ``{"rc": exit code}`` (-1: timed out, the child was killed).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time

HEAVY = ("numpy", "scipy", "cv2", "torch", "torchvision", "lightning", "open_clip", "jsonargparse",
         "albumentations", "skimage", "wandb", "pytest")


def _child(args: list[str], log: str) -> None:
    handle = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    try:
        import pytest

        code = int(pytest.main(args))
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return into the server
        import traceback

        traceback.print_exc()
        code = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _wait(pid: int, timeout: float) -> int:
    deadline = time.time() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.2)


def serve() -> None:
    for name in HEAVY:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional library missing only costs its import in the child
            continue
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request["args"], request["log"])
        print(json.dumps({"rc": _wait(pid, float(request["timeout"]))}), flush=True)


if __name__ == "__main__":
    serve()
