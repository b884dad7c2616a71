"""Finished runs as the tables see them: ``metrics.json`` files under a runs root.

Public API: ``RunRecord``, ``scan_runs``, ``finished_run``, ``select_rows``, ``check_complete``,
``PartialRunError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SEED_KEYS = ("--seed_everything=", "--data.init_args.seed=")


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its directory and ``metrics.json``."""

    path: Path
    results: dict[str, Any]
    mtime: float

    @property
    def meta(self) -> dict[str, Any]:
        return self.results.get("meta", {})

    @property
    def method(self) -> str:
        return str(self.meta.get("method", ""))

    @property
    def table(self) -> str:
        return str((self.meta.get("ablation") or {}).get("table") or "")

    @property
    def row(self) -> str:
        return str((self.meta.get("ablation") or {}).get("row") or "")

    @property
    def k(self) -> int | None:
        for item in self.meta.get("overrides") or []:
            if item.startswith("--data.init_args.k_shot="):
                return int(item.split("=", 1)[1])
        return None

    @property
    def seed(self) -> int | None:
        return self.meta.get("seed")

    @property
    def partial(self) -> bool:
        """True when the run scored only part of its test split (e.g. ``limit_test_batches``)."""
        return bool(self.meta.get("partial"))

    @property
    def random_init(self) -> bool:
        return bool(self.meta.get("random_init", True))

    def config_key(self) -> tuple[Any, ...]:
        """The request without its seed: runs equal here differ only by seed."""
        overrides = tuple(o for o in self.meta.get("overrides") or [] if not o.startswith(_SEED_KEYS))
        return self.method, self.meta.get("profile"), self.meta.get("dataset"), overrides


def scan_runs(root: str | Path) -> list[RunRecord]:
    """Every readable ``metrics.json`` with launcher metadata under ``root`` (two levels deep)."""
    root = Path(root)
    found = []
    for path in [*root.glob("*/metrics.json"), *root.glob("*/*/metrics.json")]:
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a run being written, or a foreign file: not a finished run
        if isinstance(results, dict) and results.get("meta", {}).get("request_hash"):
            found.append(RunRecord(path.parent, results, path.stat().st_mtime))
    return sorted(found, key=lambda r: r.mtime)


def finished_run(records: list[RunRecord], request_hash: str, table: str | None = None,
                 row: str | None = None) -> RunRecord | None:
    """The newest finished run of this request (and, when given, this ablation table and row)."""
    for record in reversed(records):
        if record.meta.get("request_hash") != request_hash:
            continue
        if table is not None and (record.table, record.row) != (table, row or ""):
            continue
        return record
    return None


def select_rows(records: list[RunRecord], method: str, table: str) -> dict[tuple[str, int | None], list[RunRecord]]:
    """Per (row, k) of an ablation table: the newest run's configuration, newest run per seed."""
    mine = [r for r in records if r.method == method and r.table == table]
    out: dict[tuple[str, int | None], list[RunRecord]] = {}
    for key in dict.fromkeys((r.row, r.k) for r in mine):
        candidates = [r for r in mine if (r.row, r.k) == key]
        newest = candidates[-1]
        per_seed: dict[Any, RunRecord] = {}
        for record in candidates:
            if record.config_key() == newest.config_key():
                per_seed[record.seed] = record
        out[key] = sorted(per_seed.values(), key=lambda r: (r.seed is None, r.seed or 0))
    check_complete(mine)
    return out


class PartialRunError(ValueError):
    """A table would mix runs that scored only part of their test split with complete runs."""


def check_complete(records: list[RunRecord]) -> None:
    """Refuse a table that mixes partial evaluations with complete ones (their means differ in kind)."""
    partial = [r for r in records if r.partial]
    if partial and len(partial) != len(records):
        raise PartialRunError(
            f"{len(partial)} of {len(records)} runs scored only part of their test split (meta.partial), e.g. "
            f"{partial[0].path}; rerun them without limit_test_batches or move them out of the runs folder"
        )
