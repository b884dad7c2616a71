"""Writing ``metrics.json`` / ``metrics.csv``: NaN becomes null, files are replaced atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from src.metrics.accumulator import METRICS


def to_jsonable(obj: Any) -> Any:
    """Nested dicts/lists with NaN/inf floats as ``None`` and numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def metrics_json(result: dict[str, Any]) -> str:
    """The result as ``metrics.json`` text (strict JSON: no NaN tokens)."""
    return json.dumps(to_jsonable(result), indent=2, allow_nan=False) + "\n"


def metrics_csv(result: dict[str, Any]) -> str:
    """One row per category, per defect type and the mean: ``name, level, <metric keys>``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "level", *METRICS])

    def cell(value: Any) -> str:
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))

    for level, section in (("category", "categories"), ("defect_type", "defect_types")):
        for name, metrics in result[section].items():
            writer.writerow([name, level, *(cell(metrics.get(k)) for k in METRICS)])
    writer.writerow(["mean", "mean", *(cell(result["mean"].get(k)) for k in METRICS)])
    return buffer.getvalue()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write to a temporary file next to ``path`` and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_metrics(result: dict[str, Any], output_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.csv`` into ``output_dir``; returns their paths."""
    out = Path(output_dir)
    json_path, csv_path = out / "metrics.json", out / "metrics.csv"
    atomic_write_text(json_path, metrics_json(result))
    atomic_write_text(csv_path, metrics_csv(result))
    return json_path, csv_path


def write_predictions(
    path: str | os.PathLike,
    anomaly_maps: np.ndarray,
    masks: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    categories: list[str],
    defect_types: list[str],
    paths: list[str] | None = None,
) -> Path:
    """Write the ``predictions.npz`` that ``python -m src.metrics`` reads (atomically).

    ``anomaly_maps`` (N, H, W) float32, ``masks`` (N, H, W) uint8 in {0, 1}, ``scores`` (N,) float64,
    ``labels`` (N,) int64, ``categories`` / ``defect_types`` / ``paths`` (N,) unicode strings.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "anomaly_maps": np.asarray(anomaly_maps, dtype=np.float32),
        "masks": np.asarray(masks, dtype=np.uint8),
        "scores": np.asarray(scores, dtype=np.float64),
        "labels": np.asarray(labels, dtype=np.int64),
        "categories": np.array([str(c) for c in categories]),
        "defect_types": np.array([str(d) for d in defect_types]),
    }
    if paths is not None:
        arrays["paths"] = np.array([str(p) for p in paths])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
