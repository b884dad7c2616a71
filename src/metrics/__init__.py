"""Evaluation: image/pixel AUROC, AP, max-F1 and AUPRO per category, streaming and DDP-aware.

``AnomalyMetrics`` works on its own; ``MetricsCallback`` (imported lazily, it needs Lightning) wires
it into a Trainer. See ``python -m src.metrics --help`` and ``python -m src.metrics.bench``.
"""

from typing import Any

from src.metrics.accumulator import AUPRO_VARIANTS, IMAGE_METRICS, METRICS, PIXEL_METRICS, AnomalyMetrics

__all__ = ["AUPRO_VARIANTS", "IMAGE_METRICS", "METRICS", "PIXEL_METRICS", "AnomalyMetrics", "MetricsCallback"]


def __getattr__(name: str) -> Any:
    if name == "MetricsCallback":
        from src.metrics.callback import MetricsCallback

        return MetricsCallback
    raise AttributeError(f"module 'src.metrics' has no attribute {name!r}")
