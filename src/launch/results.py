"""A run's results: merging per-category runs, the metadata the launcher adds, ``metrics.json``,
the console table, and the summary over seeds."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from src.aggregate import LABELS, METRIC_KEYS, category_mean, seed_stats
from src.runs import atomic_write_json, read_json


def merge_category_results(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One results dict from per-category runs: categories and defect types united, means recomputed."""
    categories: dict[str, Any] = {}
    defect_types: dict[str, Any] = {}
    for part in parts.values():
        categories.update(part.get("categories", {}))
        defect_types.update(part.get("defect_types", {}))
    mean, counts = category_mean(categories)
    meta = dict(next(iter(parts.values()), {}).get("meta", {}))
    meta["n_categories"] = counts
    meta["k_shot_files"] = {c: p.get("meta", {}).get("k_shot_files", {}).get(c) for c, p in parts.items()}
    steps = [p.get("meta", {}).get("trained_steps") for p in parts.values()]
    meta["trained_steps"] = None if all(s is None for s in steps) else sum(s or 0 for s in steps)
    partial = {c: p["meta"]["partial"] for c, p in parts.items() if p.get("meta", {}).get("partial")}
    if partial:
        meta["partial"] = {"categories": partial}
    return {"mean": mean, "categories": categories, "defect_types": defect_types, "meta": meta}


def finish_meta(results: dict[str, Any], extra: dict[str, Any], started: float, random_init: bool) -> dict[str, Any]:
    """Add the launcher's metadata to ``results["meta"]`` (in place); returns the meta."""
    meta = results.setdefault("meta", {})
    if "wall_s" in meta:
        meta["metrics_wall_s"] = meta.pop("wall_s")
    meta.update(extra)
    data_meta = meta.get("data") or {}
    for key in ("dataset", "seed", "protocol", "image_size"):
        if key in data_meta:
            meta.setdefault(key, data_meta[key])
    meta["wall_s"] = round(time.time() - started, 2)
    meta["random_init"] = bool(meta.get("random_init", random_init))
    return meta


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    """``metrics.json`` and ``metrics.csv``: the launcher is their one writer in a ``make train`` run."""
    from src.metrics.io import write_metrics

    write_metrics(results, run_dir)


def partial_banner(partial: dict[str, Any]) -> str:
    """The line printed above the table of a run that did not evaluate every test image."""
    return (f"PARTIAL EVALUATION ({json.dumps(partial, sort_keys=True)}): not every test image was scored; "
            "these numbers are not comparable with a complete run and tables refuse to mix them.")


def format_table(results: dict[str, Any]) -> str:
    """Per-category table of image and pixel metrics in percent, one decimal, with the mean last."""
    rows = [*results.get("categories", {}).items(), ("mean", results.get("mean", {}))]
    width = max([len(name) for name, _ in rows] + [8])
    lines = [f"{'category':<{width}} " + " ".join(f"{LABELS[c]:>8}" for c in METRIC_KEYS)]
    for name, values in rows:
        cells = ["     n/a" if values.get(c) is None else f"{100 * values[c]:8.1f}" for c in METRIC_KEYS]
        lines.append(f"{name:<{width}} " + " ".join(cells))
    return "\n".join(lines)


def print_results(results: dict[str, Any]) -> None:
    meta = results.get("meta", {})
    print()
    if meta.get("random_init"):
        print("RANDOM-INIT backbone: these numbers say nothing about the method.")
    if meta.get("partial"):
        print(partial_banner(meta["partial"]))
    if meta.get("loaded_weights"):
        print(f"LOADED WEIGHTS: {meta['loaded_weights']}, evaluated as they are (not trained in this run).")
    if meta.get("trained_steps") == 0:
        print("UNTRAINED: no optimiser step was taken; these are the figures of the model as initialised.")
    print(format_table(results))


def write_summary(group_dir: Path, runs: list[Path], seeds: list[int]) -> dict[str, Any]:
    """mean and std over seeds of every mean metric and every category metric (``summary.json``)."""
    results = [read_json(r / "metrics.json") for r in runs]
    summary: dict[str, Any] = {"seeds": seeds, "runs": [str(r) for r in runs], "mean": {}, "std": {},
                               "categories": {}}
    for key in METRIC_KEYS:
        summary["mean"][key], summary["std"][key] = seed_stats(r["mean"].get(key) for r in results)
    for category in results[0].get("categories", {}):
        cat: dict[str, Any] = {}
        for key in METRIC_KEYS:
            mean, std = seed_stats(r["categories"].get(category, {}).get(key) for r in results)
            cat[key] = {"mean": mean, "std": std}
        summary["categories"][category] = cat
    summary["meta"] = {k: results[0]["meta"].get(k) for k in ("method", "dataset", "backbone", "random_init")}
    atomic_write_json(group_dir / "summary.json", summary)
    return summary


def print_summary(summary: dict[str, Any], seeds: list[int]) -> None:
    print("\nmean ± std over seeds " + ",".join(map(str, seeds)) + ":")
    for key in METRIC_KEYS:
        m, s = summary["mean"][key], summary["std"][key]
        print(f"  {key:<12} " + ("n/a" if m is None else f"{100 * m:.1f} ± {100 * (s or 0):.1f}"))
