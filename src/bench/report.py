"""Turning row results into the comparison rows, the targets check, the Markdown table and the CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from src import registry

#: The targets: time ratio per method (fp32, batch 1; declared by each method), FLOP-ratio slack, memory ratio.
TIME_TARGETS = {m: registry.get(m).time_target for m in registry.bench_methods()}
FLOP_SLACK = 1.10
MEMORY_TARGET = 1.3
NAMES = {m: registry.get(m).display_name for m in registry.bench_methods()}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def compare(method: str, setting: Any, row: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """One method against its bare backbone, with the targets checked.

    Time: the method row's paired measurement where it has one (see ``measure.paired_timing``),
    else the two rows' medians. FLOPs and memory: the two rows.
    """
    paired = "paired_ratio" in row
    out = {
        "method": method,
        "backbone": setting.backbone,
        "image_size": setting.image_size,
        "ms_per_image": row["ms_per_image"],
        "backbone_ms_per_image": row["paired_backbone_ms"] if paired else base["ms_per_image"],
        "ratio_vs_backbone": row["paired_ratio"] if paired else _ratio(row["ms_per_image"], base["ms_per_image"]),
        "standalone_backbone_ms": base["ms_per_image"],
        **{k: row.get(k) for k in ("pairs", "paired_ratio_min", "paired_ratio_max", "paired_ratio_spread",
                                   "paired_ratio_stderr")},
        "gflops": row["gflops"],
        "backbone_gflops": base["gflops"],
        "flop_ratio_vs_backbone": _ratio(row["gflops"], base["gflops"]),
        "best_batch": row["best_batch"],
        "best_ms_per_image": row["best_ms_per_image"],
        "backbone_best_batch": base["best_batch"],
        "backbone_best_ms_per_image": base["best_ms_per_image"],
        "peak_rss_gib": row["peak_rss_gib"],
        "backbone_peak_rss_gib": base["peak_rss_gib"],
        "rss_ratio_vs_backbone": _ratio(row["peak_rss_gib"], base["peak_rss_gib"]),
        "load_avg": row.get("load_avg"),
        "backbone_load_avg": base.get("load_avg"),
    }
    if "peak_cuda_gib" in row:
        out["peak_cuda_gib"] = row["peak_cuda_gib"]
        out["backbone_peak_cuda_gib"] = base.get("peak_cuda_gib")
        out["cuda_ratio_vs_backbone"] = _ratio(row["peak_cuda_gib"], base.get("peak_cuda_gib"))
    out["targets"] = targets(out)
    return out


def targets(row: dict[str, Any]) -> dict[str, bool]:
    """The issue's three checks for one row (meant for fp32, batch 1, CPU)."""
    time_ratio, flop_ratio = row["ratio_vs_backbone"], row["flop_ratio_vs_backbone"]
    return {
        f"time<={TIME_TARGETS[row['method']]}x": time_ratio <= TIME_TARGETS[row["method"]],
        "time<=1.1x flops": time_ratio <= FLOP_SLACK * flop_ratio,
        f"rss<={MEMORY_TARGET}x": row["rss_ratio_vs_backbone"] <= MEMORY_TARGET,
    }


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(header: dict[str, Any], rows: list[dict[str, Any]], training: list[dict[str, Any]]) -> str:
    """The printed / saved report: one line per method, then training, then the targets."""
    lines = [
        f"Benchmark {header['timestamp']} - device {header['device']} ({header['device_name']}), "
        f"precision {header['precision']}, torch {header['torch']}, {header['threads']} threads, "
        f"random weights (cost does not depend on them), load avg at start {header['load_start']}",
        f"command: `{header['command']}`",
        "",
        "| method | backbone | px | ms/img | backbone ms/img | time ratio | GFLOPs | backbone GFLOPs "
        "| FLOP ratio | best batch: ms/img (method / backbone) | peak RSS GiB | backbone RSS GiB "
        "| RSS ratio | targets |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        checks = ", ".join(f"{name} {'ok' if ok else 'MISS'}" for name, ok in r["targets"].items())
        lines.append(
            f"| {NAMES[r['method']]} | {r['backbone']} | {r['image_size']} | {r['ms_per_image']:.0f} "
            f"| {r['backbone_ms_per_image']:.0f} | {r['ratio_vs_backbone']:.3f} | {r['gflops']:.1f} "
            f"| {r['backbone_gflops']:.1f} | {r['flop_ratio_vs_backbone']:.3f} "
            f"| {r['best_batch']}: {r['best_ms_per_image']:.0f} / {r['backbone_best_batch']}: "
            f"{r['backbone_best_ms_per_image']:.0f} | {r['peak_rss_gib']:.2f} | {r['backbone_peak_rss_gib']:.2f} "
            f"| {r['rss_ratio_vs_backbone']:.3f} | {checks} |"
        )
    if any("peak_cuda_gib" in r for r in rows):
        lines += ["", "| method | peak CUDA GiB | backbone peak CUDA GiB | ratio |", "|---|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {NAMES[r['method']]} | {_f(r.get('peak_cuda_gib'))} "
                         f"| {_f(r.get('backbone_peak_cuda_gib'))} | {_f(r.get('cuda_ratio_vs_backbone'), 3)} |")
    if training:
        lines += ["", "Training (one optimisation step: losses, backward, optimiser step; paper batch):", "",
                  "| method | batch | s/step | s/image | peak RSS GiB | trainable params |",
                  "|---|---:|---:|---:|---:|---:|"]
        for t in training:
            lines.append(f"| {NAMES[t['method']]} | {t['batch']} | {t['s_per_step']:.2f} "
                         f"| {t['s_per_step'] / t['batch']:.2f} | {t['peak_rss_gib']:.2f} "
                         f"| {t['trainable_params']:,} |")
    lines += ["", f"Load average at end: {header.get('load_end')}. Time ratios are medians of per-pair "
              f"ratios (at least {header['runs']} pairs, after {header['warmup']} warm-up); each row ran in "
              "its own process."]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict[str, Any]], training: list[dict[str, Any]],
              header: dict[str, Any]) -> None:
    """One CSV line per method (inference) and per training row, with device and precision."""
    fields = ["kind", "timestamp", "device", "device_name", "precision", "method", "backbone", "image_size",
              "ms_per_image", "backbone_ms_per_image", "ratio_vs_backbone", "gflops", "backbone_gflops",
              "flop_ratio_vs_backbone", "best_batch", "best_ms_per_image", "backbone_best_batch",
              "backbone_best_ms_per_image", "peak_rss_gib", "backbone_peak_rss_gib", "rss_ratio_vs_backbone",
              "peak_cuda_gib", "backbone_peak_cuda_gib", "cuda_ratio_vs_backbone", "train_batch",
              "s_per_step", "train_peak_rss_gib", "targets_met", "load_avg"]
    common = {k: header[k] for k in ("timestamp", "device", "device_name", "precision")}
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({**common, **r, "kind": "inference", "targets_met": all(r["targets"].values())})
        for t in training:
            writer.writerow({**common, "kind": "training", "method": t["method"], "backbone": t["backbone"],
                             "image_size": t["image_size"], "train_batch": t["batch"],
                             "s_per_step": t["s_per_step"], "train_peak_rss_gib": t["peak_rss_gib"],
                             "load_avg": t.get("load_avg")})
