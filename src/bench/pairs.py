"""Timing a method against its own bare backbone in alternating pairs (the benchmark's time ratio)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from .flops import flop_counter

if TYPE_CHECKING:
    from .measure import Options
    from .rows import Setting


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def backbone_fn(model: torch.nn.Module, setting: Setting) -> Callable[[torch.Tensor], Any]:
    """The bare backbone forward of the benchmark's backbone row, on the method's own backbone object."""
    backbone, layers = model.backbone, list(setting.layers)
    return lambda images: backbone.encode_image_layers(images, layers)


def paired_timing(fn: Callable[[torch.Tensor], Any], base: Callable[[torch.Tensor], Any], x: torch.Tensor,
                  opts: Options, device: torch.device) -> dict[str, Any]:
    """Method and bare backbone forwards timed in alternation, the ratio taken per pair.

    Why pairs in one process: separate processes minutes apart see different machine load, threads
    and warm caches, and a ratio of two separate medians swung by +-40% between runs. Here both
    forwards share the process, its threads and the backbone object; the order alternates within
    pairs so that a drift in load does not favour one side. Pairs continue until ``opts.runs``
    pairs and ``opts.min_time_s`` seconds are reached, then while the median's relative standard
    error exceeds ``opts.target_stderr`` and ``opts.max_time_s`` allows (two medians then agree
    within a few percent: the spread is reported, and checked by the caller). The backbone's
    FLOPs are counted here too, so both FLOP counts come from the same objects.
    """
    base(x)  # warm-up of the bare path, FLOP-counted
    counter = flop_counter()
    with counter:
        base(x)
    method_s, backbone_s, ratios = [], [], []
    start = time.perf_counter()
    while not _enough(ratios, time.perf_counter() - start, opts):
        if len(ratios) % 2:
            b, m = timed(lambda: base(x), device), timed(lambda: fn(x), device)
        else:
            m, b = timed(lambda: fn(x), device), timed(lambda: base(x), device)
        method_s.append(m)
        backbone_s.append(b)
        ratios.append(m / b)
    median = statistics.median(ratios)
    return {
        "method_s": method_s,
        "pairs": len(ratios),
        "paired_backbone_ms": 1e3 * statistics.median(backbone_s),
        "paired_backbone_gflops": counter.get_total_flops() / 1e9,
        "paired_ratio": median,
        "paired_ratio_min": min(ratios),
        "paired_ratio_max": max(ratios),
        "paired_ratio_spread": (max(ratios) - min(ratios)) / median,
        "paired_ratio_stderr": _stderr(ratios),
    }


def _stderr(ratios: list[float]) -> float | None:
    """Relative standard error of the median of ``ratios``; None below 2 pairs.

    Robust: 1.253 x sigma / sqrt(n) with sigma estimated as 1.4826 x the median absolute deviation,
    so that one forward hit by a burst of load does not inflate it (or hide a real spread).
    """
    if len(ratios) < 2:
        return None
    median = statistics.median(ratios)
    mad = statistics.median(abs(r - median) for r in ratios)
    return 1.253 * 1.4826 * mad / len(ratios) ** 0.5 / median


def _enough(ratios: list[float], elapsed: float, opts: Options) -> bool:
    if len(ratios) < opts.runs or elapsed < opts.min_time_s:
        return False
    error = _stderr(ratios)
    return error is None or error <= opts.target_stderr or elapsed >= opts.max_time_s


