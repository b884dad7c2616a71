"""Ablation grids and published numbers: the YAML and CSV files under ``experiments/``.

An ablation grid, ``experiments/ablations/<method>/<table>.yaml``::

    table: layers                          # = the file name
    title: "CLIP baseline: blocks of the map"
    paper_dataset: mvtec                   # the dataset of the published numbers
    metrics: [image_auroc, pixel_auroc]    # columns, in the paper's order
    label_columns: [blocks]                # the paper's row labels
    k: [2, 4, 8]                           # optional: run every row once per k (launcher --k)
    rows:
      - name: last
        labels: {blocks: "12"}
        overrides: {model.init_args.num_stages: 1}

A row is config overrides, never code: each ``key: value`` becomes ``--key=value`` with the value
YAML-dumped in flow style (``[1, 2]``, ``true``). With ``k``, the table has one line per (row, k)
and a ``k`` column after the labels.

Published numbers, ``experiments/reference/<method>/<table>.csv`` (``main.csv`` for the comparison
table): header ``row,dataset[,k][,category],<metric>,...`` in percent, an empty cell where the
paper gives nothing. A k sweep is keyed either by a ``k`` column or by rows named ``<row>@k<k>``.
A file with ``pixel_aupro`` says how the paper computed it in a line ``# pixel_aupro_variant: anomalyclip``
(the 200-threshold approximation) or ``exact``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from src.metrics.accumulator import AUPRO_VARIANTS, METRICS

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


class SpecError(ValueError):
    """An ablation YAML, reference CSV or protocol YAML is malformed."""


@dataclass(frozen=True)
class Row:
    name: str
    labels: dict[str, str]
    overrides: dict[str, Any]


@dataclass(frozen=True)
class AblationSpec:
    method: str
    table: str
    title: str
    paper_dataset: str
    metrics: list[str]
    label_columns: list[str]
    rows: list[Row]
    ks: list[int | None] = field(default_factory=lambda: [None])
    path: Path | None = None

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise SpecError(f"{self.path}: no row named {name!r}; rows: {[r.name for r in self.rows]}")


def _experiments(method: str) -> Path:
    """The method's experiments folder (``MethodSpec.experiments``); the repository's for an unknown name."""
    from src import registry

    spec = registry.methods().get(method)
    return spec.experiments if spec is not None else EXPERIMENTS


def ablation_path(method: str, table: str) -> Path:
    return _experiments(method) / "ablations" / method / f"{table}.yaml"


def available_tables(method: str | None = None) -> dict[str, list[str]]:
    """``{method: [table, ...]}`` of every ablation YAML present (the repository's and registered methods')."""
    from src import registry

    root = EXPERIMENTS / "ablations"
    found = sorted({*(p.name for p in root.iterdir() if p.is_dir()), *registry.names()}) if root.is_dir() else []
    methods = [method] if method else found
    folders = {m: _experiments(m) / "ablations" / m for m in methods}
    return {m: sorted(p.stem for p in folder.glob("*.yaml")) for m, folder in folders.items() if folder.is_dir()}


def load_ablation(method: str, table: str, path: Path | None = None) -> AblationSpec:
    """Read and validate ``experiments/ablations/<method>/<table>.yaml``."""
    path = path or ablation_path(method, table)
    if not path.is_file():
        known = available_tables(method).get(method, [])
        raise SpecError(f"no ablation grid {path}; tables of METHOD={method}: {known or 'none yet'}")
    data = yaml.safe_load(path.read_text()) or {}
    metrics = _check_header(path, table, data)
    label_columns = [str(c) for c in data.get("label_columns") or []]
    rows = _parse_rows(path, data["rows"] or [], label_columns)
    return AblationSpec(method=method, table=table, title=str(data["title"]),
                        paper_dataset=str(data.get("paper_dataset", "")), metrics=metrics,
                        label_columns=label_columns, rows=rows, ks=_parse_ks(path, data.get("k")), path=path)


def _check_header(path: Path, table: str, data: Any) -> list[str]:
    """The grid's top-level fields; returns its metric list."""
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with table, title, metrics, label_columns, rows")
    for key in ("title", "metrics", "rows"):
        if key not in data:
            raise SpecError(f"{path}: missing field {key!r}")
    if data.get("table", table) != table:
        raise SpecError(f"{path}: field table={data['table']!r} differs from the file name {table!r}")
    metrics = list(data["metrics"])
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise SpecError(f"{path}: metrics {unknown} unknown; valid: {list(METRICS)}")
    return metrics


def _parse_rows(path: Path, raw_rows: list[Any], label_columns: list[str]) -> list[Row]:
    rows: list[Row] = []
    for i, raw in enumerate(raw_rows):
        if not isinstance(raw, dict) or "name" not in raw:
            raise SpecError(f"{path}: rows[{i}] needs a name (and optional labels, overrides)")
        name = str(raw["name"])
        if any(r.name == name for r in rows) or "@" in name:
            raise SpecError(f"{path}: rows[{i}] name {name!r} is repeated or contains '@'")
        labels = {str(k): "" if v is None else str(v) for k, v in (raw.get("labels") or {}).items()}
        extra = sorted(set(labels) - set(label_columns))
        if extra:
            raise SpecError(f"{path}: rows[{i}] ({name}) labels {extra} are not in label_columns {label_columns}")
        overrides = raw.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise SpecError(f"{path}: rows[{i}] ({name}) overrides must be a mapping of config key to value")
        rows.append(Row(name, labels, dict(overrides)))
    if not rows:
        raise SpecError(f"{path}: rows is empty")
    return rows


def _parse_ks(path: Path, ks: Any) -> list[int | None]:
    if ks is None:
        return [None]
    if not isinstance(ks, list) or not all(isinstance(k, int) and k > 0 for k in ks):
        raise SpecError(f"{path}: k must be a list of positive shot counts, e.g. [2, 4, 8]; got {ks!r}")
    return list(ks)


def to_cli(overrides: dict[str, Any]) -> list[str]:
    """``{"model.init_args.layers": [3, 6]}`` -> ``["--model.init_args.layers=[3, 6]"]``."""
    out = []
    for key, value in overrides.items():
        text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        if text.endswith("\n...") or text.endswith("..."):
            text = text.rsplit("\n...", 1)[0].removesuffix("...").strip()
        out.append(f"--{key}={text}")
    return out


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested LightningCLI YAML -> dotted keys (``data.init_args.protocol``); lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def protocol_overrides(protocol: str) -> list[str]:
    """The CLI overrides of ``experiments/protocols/<protocol>.yaml`` (content, so it hashes)."""
    path = EXPERIMENTS / "protocols" / f"{protocol}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SpecError(f"PROTOCOL={protocol!r} has no {path}; valid: {known}")
    return to_cli(flatten(yaml.safe_load(path.read_text()) or {}))


# ---------------------------------------------------------------------- published numbers
class Reference(dict[tuple[str, str, int | None, str], dict[str, float]]):
    """``(row, dataset, k, category) -> {metric: value in [0, 1]}``; category ``""`` = dataset mean.

    ``aupro_variant``: how the published ``pixel_aupro`` was computed, from the CSV's directive line
    ``# pixel_aupro_variant: anomalyclip`` (the 200-threshold code of AnomalyCLIP/FB-CLIP) or
    ``exact``; ``unknown`` without one. Ours is differenced only against the same variant.
    """

    aupro_variant: str = "unknown"


_VARIANT_DIRECTIVE = "# pixel_aupro_variant:"


def load_reference(path: Path) -> Reference:
    """Read a reference CSV; a missing file is an empty reference (nothing published)."""
    out = Reference()
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        if line.startswith(_VARIANT_DIRECTIVE):
            variant = line[len(_VARIANT_DIRECTIVE):].strip()
            if variant not in (*AUPRO_VARIANTS, "unknown"):
                raise SpecError(f"{path}: pixel_aupro_variant {variant!r} is not one of {[*AUPRO_VARIANTS, 'unknown']}")
            out.aupro_variant = variant
    with path.open(newline="") as handle:
        reader = csv.DictReader(line for line in handle if line.strip() and not line.startswith("#"))
        if not reader.fieldnames or "row" not in reader.fieldnames or "dataset" not in reader.fieldnames:
            raise SpecError(f"{path}: header must start with row,dataset (got {reader.fieldnames})")
        unknown = [c for c in reader.fieldnames if c not in {"row", "dataset", "k", "category", *METRICS}]
        if unknown:
            raise SpecError(f"{path}: unknown columns {unknown}; metric columns are {list(METRICS)}")
        for line_no, record in enumerate(reader, start=2):
            row, k = record["row"].strip(), (record.get("k") or "").strip()
            if "@k" in row:
                row, k = row.split("@k", 1)
            key = (row, record["dataset"].strip(), int(k) if k else None, (record.get("category") or "").strip())
            values = {}
            for metric in METRICS:
                cell = (record.get(metric) or "").strip()
                if cell:
                    try:
                        values[metric] = float(cell) / 100.0
                    except ValueError as err:
                        raise SpecError(f"{path}:{line_no}: {metric}={cell!r} is not a number (percent)") from err
            out[key] = values
    return out


def reference_path(method: str, table: str) -> Path:
    return _experiments(method) / "reference" / method / f"{table}.csv"
