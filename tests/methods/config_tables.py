"""Read a method README's "value by value" table and flatten YAML configs (config tests only)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]*)`\s*\|")


def readme_table(readme: Path, heading: str) -> dict[str, Any]:
    """``{dotted key: YAML value}`` from the table under the ``## heading...`` section."""
    lines = readme.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("## ") and heading in line]
    assert len(starts) == 1, f"{readme}: one section titled {heading!r} expected, found {len(starts)}"
    table: dict[str, Any] = {}
    for line in lines[starts[0] + 1:]:
        if line.startswith("## "):
            break
        match = ROW.match(line)
        if match:
            key, value = match.groups()
            assert key not in table, f"{readme}: {key} listed twice"
            table[key] = yaml.safe_load(value)
    assert table, f"{readme}: the {heading!r} table has no rows"
    return table


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mapping -> ``{"model.init_args.lr": 5e-05, ...}`` (lists are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load(relative: str) -> dict[str, Any]:
    return yaml.safe_load((EXPERIMENTS / relative).read_text())


def reference_rows(relative: str) -> set[str]:
    """Row names of a reference CSV (comment lines skipped)."""
    import csv

    lines = [ln for ln in (EXPERIMENTS / relative).read_text().splitlines() if not ln.startswith("#")]
    return {row["row"] for row in csv.DictReader(lines)}
