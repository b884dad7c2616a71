"""Training diagnosis: loss terms and gradient norms per step, metrics on the training data.

Add it to any run without touching the config files:

    make train METHOD=afr ARGS="--trainer.callbacks+=src.logging.trace.TrainingTrace"

It writes ``<run>/trace.jsonl`` (one line per optimiser step: wall-clock time, the logged
``train/*`` loss terms and the L2 gradient norm of each parameter group, a group being the first
component of the parameter name below the method's torch model, e.g. ``stage_adapters`` or ``cmfr``) and, after ``fit``,
``<run>/train_split.json``: the final weights' per-category pixel and image AUROC on the training
data itself (the auxiliary split, read through the DataModule's validation loader, which is the
same data without augmentation). Train-split figures far above the evaluated split's mean the model
fits and does not transfer; figures near chance on the training data mean it does not fit at all.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from src.metrics.curves import BinaryCurve, exact_histogram


def group_of(name: str) -> str:
    """``model.stage_adapters.linears.0.weight`` -> ``stage_adapters``; other prefixes kept whole."""
    parts = name.split(".")
    return parts[1] if parts[0] == "model" and len(parts) > 2 else parts[0]


def grad_norms(module: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the gradients of each parameter group (trainable parameters with a gradient)."""
    squares: dict[str, float] = defaultdict(float)
    for name, param in module.named_parameters():
        if param.requires_grad and param.grad is not None:
            squares[group_of(name)] += float(param.grad.detach().double().pow(2).sum())
    return {group: value ** 0.5 for group, value in sorted(squares.items())}


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Exact AUROC (ties count one half); None when one class is absent."""
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return None
    return BinaryCurve.from_histogram(*exact_histogram(scores, labels)).auroc()


class TrainingTrace(L.Callback):
    """Writes ``trace.jsonl`` during fit and ``train_split.json`` after it (rank zero only).

    Args:
        eval_train: also evaluate the final weights on the training data.
    """

    def __init__(self, eval_train: bool = True) -> None:
        self.eval_train = eval_train
        self._norms: dict[str, float] = {}

    def _dir(self, trainer: L.Trainer) -> Path:
        return Path(trainer.default_root_dir)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        self._norms = grad_norms(pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        losses = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        line = {"step": trainer.global_step, "time": round(time.time(), 1), "epoch": trainer.current_epoch,
                "losses": losses, "grad_norm": self._norms, "lr": [g["lr"] for g in trainer.optimizers[0].param_groups]}
        with (self._dir(trainer) / "trace.jsonl").open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self.eval_train and trainer.is_global_zero):
            return
        maps: dict[str, list[np.ndarray]] = defaultdict(list)
        masks: dict[str, list[np.ndarray]] = defaultdict(list)
        scores: dict[str, list[float]] = defaultdict(list)
        labels: dict[str, list[int]] = defaultdict(list)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            for batch in trainer.datamodule.val_dataloader():
                out = pl_module.evaluation_step(move_data_to_device(batch, pl_module.device))
                for i, category in enumerate(out.batch.category):
                    maps[category].append(out.anomaly_map[i].flatten().cpu().numpy())
                    masks[category].append(out.batch.mask[i].flatten().cpu().numpy() > 0.5)
                    scores[category].append(float(out.pred_score[i]))
                    labels[category].append(int(out.batch.label[i]))
        pl_module.train(was_training)
        result = {c: {"pixel_auroc": auroc(np.concatenate(maps[c]), np.concatenate(masks[c])),
                      "image_auroc": auroc(np.asarray(scores[c]), np.asarray(labels[c]))} for c in maps}
        means = {k: float(np.mean([v[k] for v in result.values() if v[k] is not None]))
                 for k in ("pixel_auroc", "image_auroc")}
        summary = {"categories": result, "mean": means}
        (self._dir(trainer) / "train_split.json").write_text(json.dumps(summary, indent=1))
        print(f"[trace] training data, final weights: pixel AUROC {100 * means['pixel_auroc']:.1f}, "
              f"image AUROC {100 * means['image_auroc']:.1f}")
