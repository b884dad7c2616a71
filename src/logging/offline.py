"""Read an offline W&B run back from its files: config, tags, history, summary, logged tables.

``wandb.Api`` needs a server, and wandb 0.31 no longer ships a Python reader of its transaction
log, so this module parses ``run-<id>.wandb`` itself. The file is a LevelDB-style log: a 7-byte
header (``:W&B``, magic ``0xBEE1``, version 0), then 32 KiB blocks of chunks, each chunk a 7-byte
header (crc32, length, type) and payload; types 1 (full), 2 (first), 3 (middle) and 4 (last)
reassemble into serialized ``wandb.proto.wandb_internal_pb2.Record`` messages. Logged
``wandb.Table`` values are history entries pointing at ``files/media/table/*.table.json``.

Public API: ``find_offline_runs``, ``read_records``, ``read_offline_run``, ``OfflineRun``.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<4sHB")
_CHUNK = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class OfflineRunError(ValueError):
    """A folder or file is not a readable offline W&B run."""


def find_offline_runs(root: str | Path) -> list[Path]:
    """Offline run folders (``offline-run-*``, ``run-*``) under ``root`` (any depth), oldest first."""
    root = Path(root)
    found = {p.parent for p in root.rglob("run-*.wandb")}
    return sorted(found, key=lambda p: p.name)


def read_records(path: str | Path) -> Iterator[Any]:
    """Yield every ``Record`` of a ``.wandb`` transaction log, in write order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, version = _HEADER.unpack_from(data, 0) if len(data) >= _HEADER.size else (b"", 0, -1)
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise OfflineRunError(f"{path} is not a W&B transaction log (header {data[:7]!r})")
    pos, pending = _HEADER.size, b""
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:  # block trailer too short for a chunk header: zero padding
            pos += left
            continue
        _, length, kind = _CHUNK.unpack_from(data, pos)
        pos += _CHUNK.size
        payload = data[pos:pos + length]
        pos += length
        if kind == _FULL:
            pending, complete = b"", payload
        elif kind == _FIRST:
            pending, complete = payload, None
        elif kind == _MIDDLE:
            pending, complete = pending + payload, None
        elif kind == _LAST:
            pending, complete = b"", pending + payload
        else:  # zero-filled tail of a block that was flushed early
            pos += left - _CHUNK.size - length
            continue
        if complete is not None:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(complete)
            yield record


def _set_nested(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    node = target
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = json.loads(item.value_json)


@dataclass
class OfflineRun:
    """What an offline run recorded. ``history`` is one dict per ``run.log`` call."""

    path: Path
    run_id: str = ""
    name: str = ""
    project: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def files_dir(self) -> Path:
        return self.path / "files"

    def values(self, key: str) -> list[Any]:
        """Every logged value of a (flat) history key, in logging order."""
        return [row[key] for row in self.history if key in row]

    def table(self, key: str) -> tuple[list[str], list[list[Any]]]:
        """Columns and rows of the last ``wandb.Table`` logged under ``key``."""
        entries = self.values(key)
        if not entries:
            raise KeyError(f"no table logged under {key!r} in {self.path}; logged keys: {sorted(self.keys())}")
        ref = entries[-1]
        if not isinstance(ref, dict) or ref.get("_type") not in {"table-file", "table"}:
            raise KeyError(f"{key!r} in {self.path} is not a table: {ref!r}")
        content = json.loads((self.files_dir / ref["path"]).read_text())
        return list(content["columns"]), [list(r) for r in content["data"]]

    def keys(self) -> set[str]:
        return {k for row in self.history for k in row}


def read_offline_run(path: str | Path, wait_s: float = 0.0) -> OfflineRun:
    """Parse a run folder (``.../wandb/offline-run-<ts>-<id>``) or a folder holding exactly one.

    ``wandb.finish()`` can return before W&B's service process has flushed the file's last block
    (seen on a loaded machine: a 64 KiB file whose final chunks were still unwritten), so a run
    without its ``exit`` record is re-read every 0.2 s for up to ``wait_s`` seconds; still
    incomplete after that, it is an error rather than a silently partial result.
    """
    path = Path(path)
    files = list(path.glob("run-*.wandb"))
    if not files:
        runs = find_offline_runs(path)
        if len(runs) != 1:
            raise OfflineRunError(f"{path} holds {len(runs)} W&B runs; pass one of them: {[str(r) for r in runs]}")
        path, files = runs[0], list(runs[0].glob("run-*.wandb"))
    deadline = time.monotonic() + wait_s
    while True:
        run = _parse_run(path, files[0])
        if run.exit_code is not None:
            return run
        if time.monotonic() >= deadline:
            raise OfflineRunError(
                f"{files[0]} has no exit record: the run is unfinished or W&B is still writing it "
                f"(waited {wait_s:g} s; pass wait_s= to wait longer)"
            )
        time.sleep(0.2)


def _parse_run(path: Path, file: Path) -> OfflineRun:
    run = OfflineRun(path=path)
    for record in read_records(file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = record.run
            run.run_id, run.name, run.project = info.run_id, info.display_name, info.project
            run.group, run.tags = info.run_group, list(info.tags)
            for item in info.config.update:
                _set_nested(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set_nested(run.config, item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set_nested(row, item)
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set_nested(run.summary, item)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.config.pop("_wandb", None)
    return run
