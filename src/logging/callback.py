"""``WandbResults``: per-category results table and anomaly-map figures at test end.

Runs after the metrics callback (list it after ``MetricsCallback`` in the trainer's callbacks).
While testing it keeps a few samples per category (see :mod:`src.logging.samples`); at test end
it gathers them from every process, and rank 0

* writes ``<figure_dir>/<category>.png`` (image | ground truth | map overlay, one row per sample)
  and ``<figure_dir>/samples.npz``;
* when a ``WandbLogger`` is attached, logs ``test/per_category`` (a ``wandb.Table``: one row per
  category plus ``mean``, one column per metric) and ``test/anomaly_maps`` (a ``wandb.Table`` of
  ``wandb.Image`` figures, one per category) plus each figure as ``test/figures/<category>`` (an
  image file in the run folder: offline, W&B keeps table media only in a staged artifact).

Without a W&B logger only the files are written.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from src.contracts import EvaluationOutput
from src.logging import figures
from src.logging.samples import Sample, SampleStore, category_figure, save_samples
from src.metrics.accumulator import METRICS
from src.metrics.distributed import all_gather_object, rank_and_world


class WandbResults(L.Callback):
    """Log the per-category table and qualitative figures of a test run.

    Args:
        samples_per_label: anomalous and normal samples kept per category (the lowest indices).
        figure_dir: where PNGs and ``samples.npz`` go; default ``<trainer.default_root_dir>/figures``.
        cell: side of one panel in the PNG grids, in pixels.
    """

    def __init__(self, samples_per_label: int = 1, figure_dir: str | None = None, cell: int = 160) -> None:
        super().__init__()
        self.store = SampleStore(samples_per_label)
        self.figure_dir = figure_dir
        self.cell = cell
        self.written: list[Path] = []

    # ------------------------------------------------------------------ collecting
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.store = SampleStore(self.store.per_label)
        self.written = []

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(outputs, EvaluationOutput):
            return
        scored = outputs.batch
        for i, (category, label, index) in enumerate(
            zip(scored.category, scored.label.tolist(), scored.index.tolist(), strict=True)
        ):
            if self.store.wants(category, int(label), int(index)):
                self.store.add(_sample(outputs, i))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Every process kept its own shard's candidates; merging by index gives the samples one
        # process would have kept (DistributedSampler padding repeats indices, which merge away).
        gathered = all_gather_object(self.store.samples())
        merged = SampleStore(self.store.per_label)
        for part in gathered:
            merged.extend(part)
        self.store = merged

    # ------------------------------------------------------------------ writing
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if rank_and_world()[0] != 0 or not trainer.is_global_zero:
            return
        samples = self.store.samples()
        out_dir = Path(self.figure_dir or Path(trainer.default_root_dir) / "figures")
        by_category: dict[str, list[Sample]] = {}
        for s in samples:
            by_category.setdefault(s.category, []).append(s)
        pictures = {c: category_figure(ss, self.cell) for c, ss in by_category.items()}
        for category, picture in pictures.items():
            self.written.append(figures.write_png(out_dir / f"{category}.png", picture))
        if samples:
            self.written.append(save_samples(samples, out_dir / "samples.npz"))
        run = _wandb_run(trainer)
        if run is None:
            return
        import wandb

        payload: dict[str, Any] = {}
        results = _metrics_results(trainer)
        if results is None:
            warnings.warn("WandbResults: no metrics callback with results found; the per-category table is "
                          "not logged (list MetricsCallback before WandbResults)", stacklevel=1)
        else:
            payload["test/per_category"] = wandb.Table(columns=["category", *METRICS], data=per_category_rows(results))
        for category, picture in pictures.items():
            payload[f"test/figures/{category}"] = wandb.Image(picture, caption="image | ground truth | map")
        if pictures:
            payload["test/anomaly_maps"] = wandb.Table(
                columns=["category", "samples", "figure"],
                data=[[c, len(by_category[c]), wandb.Image(p, caption=f"{c}: image | ground truth | map")]
                      for c, p in pictures.items()],
            )
        if payload:
            run.log(payload)


def per_category_rows(results: dict[str, Any]) -> list[list[Any]]:
    """``[category, *metrics]`` rows of a metrics.json dict, ``mean`` last; missing metrics are None."""
    rows = [[name, *(values.get(k) for k in METRICS)] for name, values in results.get("categories", {}).items()]
    rows.append(["mean", *(results.get("mean", {}).get(k) for k in METRICS)])
    return rows


def _sample(outputs: EvaluationOutput, i: int) -> Sample:
    """Sample ``i`` of a step's output, its normalised (3, S, S) image turned back into RGB."""
    from datamodules.transforms import denormalize

    b = outputs.batch
    image = denormalize(b.image[i].detach().float().cpu()).numpy()
    mask = b.mask[i].detach().float().cpu().reshape(b.mask.shape[-2:]).numpy()
    return Sample(
        category=str(b.category[i]),
        index=int(b.index[i]),
        label=int(b.label[i]),
        defect_type=str(b.defect_type[i]),
        path=str(b.path[i]),
        pred_score=float(outputs.pred_score[i]),
        image=figures.to_rgb(image),
        mask=(mask > 0.5).astype(np.uint8),
        anomaly_map=outputs.anomaly_map[i].detach().to(torch.float32).cpu().numpy(),
    )


def _wandb_run(trainer: L.Trainer) -> Any:
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def _metrics_results(trainer: L.Trainer) -> dict[str, Any] | None:
    for callback in trainer.callbacks:
        results = getattr(callback, "results", None)
        if callback is not None and isinstance(results, dict) and "categories" in results:
            return results
    return None
