"""Means over categories and statistics over seeds: one rule each, for the launcher and the tables.

* Metric keys are those of :mod:`src.metrics.accumulator` (``METRICS``); ``LABELS`` are their
  names in printed and written tables.
* A missing value is ``None`` or NaN (a metric undefined for a category, e.g. pixel metrics without
  masks). Means skip missing values; a mean over no value is ``None``.
* Over seeds: the mean, and the sample standard deviation (n - 1); with fewer than two values
  the std is ``None`` (undefined), shown as ``mean`` alone in tables.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from src.metrics.accumulator import METRICS

METRIC_KEYS = METRICS
LABELS = {"image_auroc": "I-AUROC", "image_ap": "I-AP", "image_f1max": "I-F1max", "pixel_auroc": "P-AUROC",
          "pixel_ap": "P-AP", "pixel_f1max": "P-F1max", "pixel_aupro": "P-AUPRO"}


def present(values: Iterable[float | None]) -> list[float]:
    """The values that are neither ``None`` nor NaN."""
    return [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def category_mean(categories: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, float | None], dict[str, int]]:
    """Per metric: the mean over the categories that have it, and how many do (``meta.n_categories``)."""
    mean: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for key in METRIC_KEYS:
        values = present(v.get(key) for v in categories.values())
        counts[key] = len(values)
        mean[key] = sum(values) / len(values) if values else None
    return mean, counts


def seed_stats(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std over seeds; std ``None`` with fewer than two values, both ``None`` with none."""
    found = present(values)
    if not found:
        return None, None
    return statistics.fmean(found), statistics.stdev(found) if len(found) > 1 else None
