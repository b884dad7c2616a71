"""Quick-profile smoke run of VTFusion on the built-in benchmark: before vs after training.

    python -m src.methods.vtfusion.smoke [--dataset builtin-B --k 2 --seed 0 --categories a,b --steps N]

For each category (one model per category, the k-shot protocol): build the AnomalyDataModule and
the model from ``experiments/methods/vtfusion.yaml`` + ``experiments/profiles/quick/vtfusion.yaml``,
compute prototypes from the k logged shots, evaluate the untrained model, train ``max_steps``,
evaluate again. Prints per-category and mean pixel AUROC / exact AUPRO / image AUROC and wall
time. The built-in defects (scratches, stains, holes, foreign objects) are not DAS's recipes, so
this measures transfer from synthetic to unseen defect kinds. Weights are random offline, so the
numbers say the pipeline learns, not how good VTFusion is.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from scipy.stats import rankdata

from src.metrics.aupro import region_weights
from src.metrics.curves import aupro

from .lightning_model import VTFusion

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = (ROOT / "experiments/methods/vtfusion.yaml", ROOT / "experiments/profiles/quick/vtfusion.yaml")


def merged_config(paths: tuple[Path, ...] = CONFIGS) -> dict[str, Any]:
    """The method file with the quick profile layered on top (dicts merged, other values replaced)."""

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    config: dict[str, Any] = {}
    for path in paths:
        config = merge(config, yaml.safe_load(path.read_text()) or {})
    return config


def exact_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Rank-based AUROC (Mann-Whitney U, midranks for ties)."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def exact_aupro(maps: np.ndarray, masks: np.ndarray) -> float:
    """AUPRO to FPR 0.3 over every distinct score (8-connected regions). (N, H, W) each."""
    _, inverse = np.unique(maps.astype(np.float64), return_inverse=True)
    inverse = inverse.reshape(maps.shape)
    n_bins = int(inverse.max()) + 1
    neg = np.bincount(inverse[~masks], minlength=n_bins)
    pos_weight = np.zeros(n_bins)
    n_regions = 0
    for inv, mask in zip(inverse, masks):
        if mask.any():
            weights, n = region_weights(mask)
            pos_weight += np.bincount(inv[mask], weights=weights, minlength=n_bins)
            n_regions += n
    return aupro(neg, pos_weight, n_regions)


@torch.no_grad()
def evaluate(model: VTFusion, loader: Any) -> dict[str, float]:
    model.eval()
    maps, masks, scores, labels = [], [], [], []
    for batch in loader:
        out = model.evaluation_step(batch)
        maps.append(out["anomaly_map"].numpy())
        masks.append(batch["mask"][:, 0].numpy() > 0.5)
        scores.append(out["pred_score"].numpy())
        labels.append(batch["label"].numpy())
    maps, masks = np.concatenate(maps), np.concatenate(masks)
    return {
        "pixel_auroc": exact_auroc(maps, masks),
        "pixel_aupro": exact_aupro(maps, masks),
        "image_auroc": exact_auroc(np.concatenate(scores), np.concatenate(labels)),
    }


def main() -> None:
    from datamodules.datamodule import AnomalyDataModule  # the data package, imported only by this script

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="builtin-B")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--categories", default=None, help="comma-separated; default all")
    parser.add_argument("--steps", type=int, default=None, help="override trainer.max_steps")
    args = parser.parse_args()

    config = merged_config()
    model_args = dict(config["model"]["init_args"])
    data_args = dict(config["data"]["init_args"])
    steps = args.steps or int(config["trainer"]["max_steps"])
    data_args.update(dataset=args.dataset, k_shot=args.k, seed=args.seed, train_steps=steps, num_workers=0)
    probe = AnomalyDataModule(**data_args)
    probe.prepare_data()
    categories = args.categories.split(",") if args.categories else probe.categories
    print(f"VTFusion smoke: {args.dataset}, k={args.k}, seed={args.seed}, {steps} steps, "
          f"{model_args['backbone']} ({model_args['pretrained']}) at {model_args['image_size']} px")

    rows, start, cpu_start = [], time.time(), time.process_time()
    for category in categories:
        t0 = time.time()
        L.seed_everything(args.seed, verbose=False)
        datamodule = AnomalyDataModule(**{**data_args, "categories": [category]})
        datamodule.prepare_data()
        datamodule.setup("fit")
        model = VTFusion(**model_args)
        model.prepare_category(datamodule)
        before = evaluate(model, datamodule.test_dataloader())
        trainer = L.Trainer(
            accelerator="cpu", max_steps=steps, max_epochs=-1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
            limit_val_batches=0,
        )
        trainer.fit(model, datamodule=datamodule)
        after = evaluate(model, datamodule.test_dataloader())
        rows.append((category, before, after))
        print(f"{category:<14} shots={datamodule.k_shot_files[category]}  ({time.time() - t0:.0f} s)", flush=True)
        for name in before:
            print(f"    {name:<12} before {100 * before[name]:5.1f}   after {100 * after[name]:5.1f}", flush=True)

    print(f"\nmean over {len(rows)} categories (percent)   before   after")
    for name in rows[0][1]:
        b = np.nanmean([r[1][name] for r in rows])
        a = np.nanmean([r[2][name] for r in rows])
        print(f"    {name:<30} {100 * b:6.1f}  {100 * a:6.1f}")
    print(f"wall time (fit + 2 evaluations, all categories): {time.time() - start:.0f} s, "
          f"process CPU time {time.process_time() - cpu_start:.0f} s (all threads; load from other jobs inflates wall)")


if __name__ == "__main__":
    main()
