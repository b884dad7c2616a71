"""Benchmark the metrics on a synthetic, MVTec AD-sized test set.

``python -m src.metrics.bench [--images 1725] [--size 518]`` builds 15 categories with MVTec AD's
test counts, anomalous images with 1-3 blob or scratch regions, and maps made
of a smooth random field plus signal inside the defects, at the ViT patch grid (size // 14), then
upsampled and smoothed by the shared :class:`~src.postprocess.PostProcessor`. Maps are fed to
:class:`~src.metrics.accumulator.AnomalyMetrics` in batches of 8. Making the maps, smoothing them
and computing the metrics are timed separately; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from src.metrics.accumulator import METRICS, AnomalyMetrics
from src.postprocess import PostProcessor

#: MVTec AD test split per category: (normal, anomalous, defect types).
MVTEC_TEST = {
    "bottle": (20, 63, 3),
    "cable": (58, 92, 8),
    "capsule": (23, 109, 5),
    "carpet": (28, 89, 5),
    "grid": (21, 57, 5),
    "hazelnut": (40, 70, 4),
    "leather": (32, 92, 5),
    "metal_nut": (22, 93, 4),
    "pill": (26, 141, 7),
    "screw": (41, 119, 5),
    "tile": (33, 84, 5),
    "toothbrush": (12, 30, 1),
    "transistor": (60, 40, 4),
    "wood": (19, 60, 5),
    "zipper": (32, 119, 7),
}
BATCH = 8


def plan(n_images: int, seed: int = 0) -> list[tuple[str, int, str]]:
    """(category, label, defect type) per image; MVTec's counts, scaled when ``n_images != 1725``."""
    total = sum(n + a for n, a, _ in MVTEC_TEST.values())
    rows = []
    for cat, (n_normal, n_anomalous, n_types) in MVTEC_TEST.items():
        n_normal = max(1, round(n_normal * n_images / total))
        n_anomalous = max(1, round(n_anomalous * n_images / total))
        rows += [(cat, 0, "good")] * n_normal
        rows += [(cat, 1, f"defect{i % n_types}") for i in range(n_anomalous)]
    order = np.random.default_rng(seed).permutation(len(rows))  # categories interleave, as in a shuffled run
    return [rows[i] for i in order]


def make_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) bool with 1-3 regions: filled ellipses (blobs) or thick line segments (scratches)."""
    mask = np.zeros((size, size), dtype=bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        if rng.random() < 0.6:
            ry, rx = rng.uniform(0.01, 0.12, 2) * size + 1
            y0, y1 = int(max(cy - ry, 0)), int(min(cy + ry + 1, size))
            x0, x1 = int(max(cx - rx, 0)), int(min(cx + rx + 1, size))
            yy, xx = np.mgrid[y0:y1, x0:x1]
            mask[y0:y1, x0:x1] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            length, angle, width = rng.uniform(0.1, 0.5) * size, rng.uniform(0, np.pi), rng.uniform(1, 4)
            t = np.linspace(-length / 2, length / 2, int(length * 2) + 2)
            ys = np.clip(np.round(cy + t * np.sin(angle)), 0, size - 1).astype(int)
            xs = np.clip(np.round(cx + t * np.cos(angle)), 0, size - 1).astype(int)
            half = int(width // 2)
            for dy in range(-half, half + 1):
                for dx in range(-half, half + 1):
                    mask[np.clip(ys + dy, 0, size - 1), np.clip(xs + dx, 0, size - 1)] = True
    return mask


def make_batch(
    rng: np.random.Generator, rows: list[tuple[str, int, str]], size: int, grid: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw maps (B, grid, grid) at patch resolution, masks (B, size, size), image scores (B,)."""
    masks = np.stack([make_mask(rng, size) if label else np.zeros((size, size), bool) for _, label, _ in rows])
    masks_t = torch.from_numpy(masks).float()
    field = torch.from_numpy(rng.normal(size=(len(rows), grid, grid))).float()
    strength = torch.from_numpy(rng.uniform(0.5, 3.0, len(rows))).float().view(-1, 1, 1)
    signal = F.adaptive_avg_pool2d(masks_t.unsqueeze(1), grid)[:, 0]
    raw = field + strength * (signal > 0).float() + 2 * signal
    labels = torch.tensor([label for _, label, _ in rows], dtype=torch.float32)
    scores = torch.from_numpy(rng.normal(size=len(rows))).float() + 1.5 * labels
    return raw, masks_t, scores


def run(n_images: int = 1725, size: int = 518, seed: int = 0, num_bins: int = 2**20) -> dict:
    """Time and measure the metrics on ``n_images`` synthetic predictions of ``size`` pixels."""
    rng = np.random.default_rng(seed)
    rows = plan(n_images, seed)
    grid = max(size // 14, 2)
    post = PostProcessor(sigma=4.0)
    metrics = AnomalyMetrics(num_bins=num_bins)
    make_s = smooth_s = metric_s = metric_cpu_s = 0.0
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        t0 = time.perf_counter()
        raw, masks, scores = make_batch(rng, batch, size, grid)
        t1 = time.perf_counter()
        maps = post(raw, (size, size))
        t2, c2 = time.perf_counter(), time.process_time()
        metrics.update(
            maps,
            scores,
            masks,
            torch.tensor([label for _, label, _ in batch]),
            [cat for cat, _, _ in batch],
            [defect for _, _, defect in batch],
            torch.arange(start, start + len(batch)),
        )
        t3 = time.perf_counter()
        make_s, smooth_s, metric_s = make_s + t1 - t0, smooth_s + t2 - t1, metric_s + t3 - t2
        metric_cpu_s += time.process_time() - c2
    t0, c0 = time.perf_counter(), time.process_time()
    result = metrics.compute()
    metric_s += time.perf_counter() - t0
    metric_cpu_s += time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    summary = {
        "wall_s": round(metric_s, 2),
        "cpu_s": round(metric_cpu_s, 2),  # metrics CPU time: comparable when the machine is shared
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "peak_rss_gib": round(peak, 3),
        "images": len(rows),
        "size": size,
        "pixels": len(rows) * size * size,
        "num_bins": num_bins,
        "make_maps_s": round(make_s, 2),
        "smoothing_s": round(smooth_s, 2),
        "torch_threads": torch.get_num_threads(),
    }
    return {"result": result, "summary": summary}


def format_table(result: dict) -> str:
    """Per category and mean, x100 with one decimal as in the papers' tables."""
    header = f"{'category':<12}" + "".join(f"{k:>13}" for k in METRICS)
    lines = [header, "-" * len(header)]
    rows = list(result["categories"].items()) + [("mean", result["mean"])]
    for name, m in rows:
        cells = "".join(f"{'-' if np.isnan(m[k]) else f'{100 * m[k]:.1f}':>13}" for k in METRICS)
        lines.append(f"{name:<12}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line of ``python -m src.metrics.bench``."""
    parser = argparse.ArgumentParser(prog="python -m src.metrics.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1725, help="number of test images (default: MVTec AD's 1725)")
    parser.add_argument("--size", type=int, default=518, help="evaluation size in pixels (default 518)")
    parser.add_argument("--num-bins", type=int, default=2**20, help="histogram bins per category")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.images < 30 or args.size < 16:
        parser.error("--images must be >= 30 (two per category) and --size >= 16")
    out = run(args.images, args.size, args.seed, args.num_bins)
    print(format_table(out["result"]))
    s = out["summary"]
    print(
        f"\nmetrics {s['wall_s']:.1f} s (peak RSS {s['peak_rss_gib']:.2f} GiB) for {s['images']} images at "
        f"{s['size']} px; making maps {s['make_maps_s']:.1f} s, smoothing {s['smoothing_s']:.1f} s"
    )
    print(json.dumps(s))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
