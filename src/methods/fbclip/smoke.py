"""Quick-profile smoke run of FB-CLIP on the built-in benchmark: evaluate, train, evaluate again.

``python -m src.methods.fbclip.smoke`` builds the AnomalyDataModule on ``builtin-B`` (training on
builtin-A's test split, the cross-dataset protocol), FB-CLIP with the quick-profile settings
(``experiments/profiles/quick/fb.yaml``: small-vit at 224 px, taps 1/2/4/6/8, 2 epochs, everything
else as released), and prints image/pixel AUROC and AUPRO before and after training with the
wall time of each phase.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import numpy as np
import torch

from datamodules.datamodule import AnomalyDataModule
from src.metrics.accumulator import AnomalyMetrics

from .lightning_model import FBCLIP


def exact_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Rank-based AUROC (average ranks for ties), pooled over all samples."""
    from scipy.stats import rankdata

    labels = labels.astype(bool)
    ranks = rankdata(scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def evaluate(module: FBCLIP, loader) -> dict[str, float]:
    module.eval()
    metrics = AnomalyMetrics(aupro_variant="exact")
    maps, masks, scores, labels = [], [], [], []
    for batch in loader:
        out = module.test_step(batch, 0)
        metrics.update(out["anomaly_map"], out["pred_score"], out["mask"], out["label"], out["category"],
                       out["defect_type"], out["index"])
        maps.append(out["anomaly_map"].numpy().ravel())
        masks.append(out["mask"].numpy().ravel())
        scores.append(out["pred_score"].numpy())
        labels.append(out["label"].numpy())
    result = metrics.compute()
    mean = result.get("mean", result)
    summary = {
        "pixel_auroc_pooled_exact": exact_auroc(np.concatenate(maps), np.concatenate(masks) > 0.5),
        "image_auroc_pooled_exact": exact_auroc(np.concatenate(scores), np.concatenate(labels)),
    }
    for key in ("image_auroc", "pixel_auroc", "pixel_aupro"):
        if key in mean:
            summary[f"{key}_category_mean"] = float(mean[key])
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="small-vit")
    parser.add_argument("--pretrained", default="auto")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--layers", default="1,2,4,6,8")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-5, help="released 5e-5")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    L.seed_everything(42, verbose=False)
    start = time.perf_counter()
    data = AnomalyDataModule(dataset="builtin-B", image_size=args.image_size, batch_size=4, eval_batch_size=8,
                             mask_interpolation="bilinear_threshold")
    data.prepare_data()
    data.setup("fit")
    data.setup("test")
    module = FBCLIP(backbone=args.backbone, pretrained=args.pretrained, image_size=args.image_size,
                    layers=[int(i) for i in args.layers.split(",")], lr=args.lr)
    print(f"setup {time.perf_counter() - start:.1f}s; trainable parameters {module.trainable_parameter_count():,}; "
          f"backbone {module.model.backbone.describe()}")

    t = time.perf_counter()
    before = evaluate(module, data.test_dataloader())
    t_eval = time.perf_counter() - t
    print(f"before training ({t_eval:.0f}s): " + ", ".join(f"{k} {100 * v:.1f}" for k, v in before.items()),
          flush=True)
    t = time.perf_counter()
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0)
    trainer.fit(module, train_dataloaders=data.train_dataloader())
    t_fit = time.perf_counter() - t
    t = time.perf_counter()
    after = evaluate(module, data.test_dataloader())
    t_eval2 = time.perf_counter() - t
    print(f"{'metric':34s} {'before':>8s} {'after':>8s}")
    for key in before:
        print(f"{key:34s} {100 * before[key]:8.1f} {100 * after.get(key, float('nan')):8.1f}")
    print(f"wall: eval {t_eval:.0f}s, fit ({args.epochs} epochs, {trainer.global_step} steps) {t_fit:.0f}s, "
          f"eval {t_eval2:.0f}s, total {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
