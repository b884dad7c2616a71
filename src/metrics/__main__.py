"""Evaluate saved predictions from any tool: ``python -m src.metrics PRED.npz``.

The ``.npz`` holds ``anomaly_maps`` (N, H, W) float, ``masks`` (N, H, W) in {0, 1}, ``scores`` (N,),
``labels`` (N,) 0/1, ``categories`` (N,) strings and optionally ``defect_types`` (N,) strings (the
format :class:`~src.metrics.callback.MetricsCallback` writes with ``save_predictions=True``). The
metrics are printed as ``metrics.json`` on stdout. The arrays are loaded into memory whole.

Refused with one line naming the file: a damaged ``.npz``, N = 0, labels other than 0/1, a normal
image with a non-empty mask.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from src.metrics.accumulator import AUPRO_VARIANTS, AnomalyMetrics
from src.metrics.io import metrics_json, write_metrics
from src.postprocess import PostProcessor

REQUIRED = ("anomaly_maps", "masks", "scores", "labels", "categories")
BATCH = 16


def load_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """Read and validate a predictions ``.npz``; errors name the array and the expected shape."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such predictions file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        if "pickle" not in str(e):
            raise ValueError(f"{path}: not a readable .npz file ({e})") from None
        raise ValueError(
            f"{path}: could not read the arrays without pickle ({e}); store strings as numpy unicode "
            "arrays, e.g. np.array(['bottle', ...]), not object arrays"
        ) from e
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise ValueError(
            f"{path}: not a readable .npz file ({type(e).__name__}: {e}); it is truncated or corrupt, "
            "write it again (np.savez or MetricsCallback(save_predictions=True))"
        ) from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}; required: {list(REQUIRED)}, optional: ['defect_types']")
    maps = arrays["anomaly_maps"]
    if maps.ndim != 3:
        raise ValueError(f"{path}: anomaly_maps must have shape (N, H, W), got {maps.shape}")
    n = maps.shape[0]
    if arrays["masks"].shape != maps.shape:
        raise ValueError(
            f"{path}: masks must have shape (N, H, W) = {maps.shape} like anomaly_maps, got {arrays['masks'].shape}"
        )
    for key in ("scores", "labels", "categories", "defect_types"):
        if key in arrays and arrays[key].shape != (n,):
            raise ValueError(f"{path}: {key} must have shape (N,) = ({n},), got {arrays[key].shape}")
    if not np.issubdtype(maps.dtype, np.number):
        raise ValueError(f"{path}: anomaly_maps must be numeric, got dtype {maps.dtype}")
    mask_values = np.unique(arrays["masks"])
    if not np.isin(mask_values, (0, 1)).all():
        raise ValueError(
            f"{path}: masks must hold only 0 and 1, found values such as {mask_values[:5].tolist()}; "
            "binarise them first (e.g. masks > 0)"
        )
    check_labels(path, arrays)
    arrays.setdefault("defect_types", np.array([""] * n))
    return arrays


def check_labels(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """N >= 1; labels exactly 0 or 1; a normal image (label 0) has an empty mask."""
    labels, masks = arrays["labels"], arrays["masks"]
    if labels.shape[0] == 0:
        raise ValueError(f"{path}: N = 0 images; there is nothing to evaluate")
    if not np.issubdtype(labels.dtype, np.number) or not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))][:5].tolist() if np.issubdtype(labels.dtype, np.number) else labels.dtype
        raise ValueError(f"{path}: labels must be 0 (normal) or 1 (anomalous), found {bad}")
    normal_with_mask = np.flatnonzero((labels == 0) & masks.reshape(len(labels), -1).any(axis=1))
    if normal_with_mask.size:
        raise ValueError(
            f"{path}: {normal_with_mask.size} image(s) labelled 0 (normal) have a non-empty mask, e.g. index "
            f"{int(normal_with_mask[0])}; a defect mask means label 1"
        )


def evaluate(
    arrays: dict[str, np.ndarray], aupro_variant: str = "exact", sigma: float = 0.0, num_bins: int = 2**20
) -> dict:
    """Metrics of loaded predictions; ``sigma > 0`` smooths the maps with the shared Gaussian first."""
    post = PostProcessor(sigma=sigma) if sigma > 0 else None
    metrics = AnomalyMetrics(aupro_variant=aupro_variant, num_bins=num_bins)
    n = arrays["anomaly_maps"].shape[0]
    try:
        for s in range(0, n, BATCH):
            sl = slice(s, min(s + BATCH, n))
            maps = torch.from_numpy(np.ascontiguousarray(arrays["anomaly_maps"][sl], dtype=np.float32))
            if post is not None:
                maps = post(maps)
            metrics.update(
                maps,
                arrays["scores"][sl],
                arrays["masks"][sl],
                arrays["labels"][sl].astype(np.int64),
                [str(c) for c in arrays["categories"][sl]],
                [str(d) for d in arrays["defect_types"][sl]],
                np.arange(sl.start, sl.stop),
            )
    except BaseException:
        metrics.close()
        raise
    return metrics.compute()


def main(argv: list[str] | None = None) -> int:
    """Command line: score ``PRED.npz`` and write the metrics; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m src.metrics", description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", help="path to PRED.npz")
    parser.add_argument("--aupro-variant", choices=AUPRO_VARIANTS, default="exact")
    parser.add_argument("--sigma", type=float, default=0.0, help="Gaussian sigma applied to the maps (0: as given)")
    parser.add_argument("--num-bins", type=int, default=2**20, help="histogram bins per category")
    parser.add_argument("--output-dir", help="also write metrics.json and metrics.csv there")
    args = parser.parse_args(argv)
    try:
        arrays = load_predictions(args.predictions)
        result = evaluate(arrays, args.aupro_variant, args.sigma, args.num_bins)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result["meta"]["predictions"] = str(args.predictions)
    result["meta"]["sigma"] = args.sigma
    if args.output_dir:
        write_metrics(result, args.output_dir)
    sys.stdout.write(metrics_json(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
