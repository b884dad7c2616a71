"""Lightning callback: feeds test/validation outputs to :class:`AnomalyMetrics`, logs and writes results."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from src.contracts import EvaluationOutput
from src.metrics.accumulator import AUPRO_VARIANTS, METRICS, AnomalyMetrics
from src.metrics.distributed import all_gather_object
from src.metrics.io import write_metrics, write_predictions

log = logging.getLogger(__name__)


class MetricsCallback(L.Callback):
    """Computes every image and pixel metric per category at the end of test and validation epochs.

    The LightningModule's ``test_step`` / ``validation_step`` returns an
    :class:`~src.contracts.EvaluationOutput`: ``anomaly_map`` (B, H, W) post-processed,
    ``pred_score`` (B,) raw, and the batch whose ``mask``, ``label``, ``category``,
    ``defect_type``, ``index``, ``has_mask`` and ``path`` are scored.

    Metrics are logged as ``test/<category>/<metric>`` and ``test/mean/<metric>`` (``val/...`` in
    validation). At test end, rank 0 writes ``metrics.json`` and ``metrics.csv`` into the output
    directory, and the result (NaN where undefined) stays on :attr:`results` for other code.

    Args:
        aupro_variant: ``"exact"`` or ``"anomalyclip"`` (see :class:`AnomalyMetrics`).
        num_bins: histogram bins per category for the pixel metrics.
        spill_dir: parent of the temporary per-rank spill directory (default: system temp dir).
        save_predictions: also write ``predictions.npz`` (the ``python -m src.metrics`` format) at
            test end. This keeps every map in memory (1.7 GiB for MVTec AD at 518 px) and gathers
            them on rank 0; meant for small sets and for cross-checking with other tools.
        output_dir: where files go; default ``trainer.default_root_dir``.
    """

    #: ``False`` when the code that ran the test writes the results itself (``make train`` adds its
    #: metadata to ``metrics.json``: one writer, one file).
    write_files = True

    def __init__(
        self,
        aupro_variant: str = "exact",
        num_bins: int = 2**20,
        spill_dir: str | None = None,
        save_predictions: bool = False,
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        if aupro_variant not in AUPRO_VARIANTS:
            raise ValueError(
                f"MetricsCallback: aupro_variant={aupro_variant!r} is not valid; choose one of {AUPRO_VARIANTS}"
            )
        self.aupro_variant = aupro_variant
        self.num_bins = num_bins
        self.spill_dir = spill_dir
        self.save_predictions = save_predictions
        self.output_dir = output_dir
        self.results: dict[str, Any] | None = None
        self.validation_results: dict[str, Any] | None = None
        self._metrics: AnomalyMetrics | None = None
        self._predictions: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- test
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start a fresh accumulation for this evaluation."""
        self._start(trainer)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Add one batch's maps, scores, masks and labels to the accumulator."""
        self._update(outputs, batch, keep_predictions=self.save_predictions)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Compute, log and (rank 0) write the metrics of this evaluation."""
        result = self._finish(trainer, pl_module, "test")
        self.results = result
        predictions = self._gather_predictions() if self.save_predictions else None
        if trainer.is_global_zero:
            out = Path(self.output_dir or trainer.default_root_dir)
            if self.write_files:
                json_path, _ = write_metrics(result, out)
                log.info("metrics written to %s", json_path)
            if predictions is not None:
                write_predictions(out / "predictions.npz", **predictions)

    # ----------------------------------------------------------- validation
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start a fresh accumulation for this validation."""
        if not trainer.sanity_checking:
            self._start(trainer)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Add one validation batch to the accumulator."""
        if not trainer.sanity_checking:
            self._update(outputs, batch, keep_predictions=False)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Compute and log the validation metrics."""
        if not trainer.sanity_checking:
            self.validation_results = self._finish(trainer, pl_module, "val")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Remove this rank's spill files when a run fails."""
        if self._metrics is not None:
            self._metrics.close()  # do not leave spill files behind
            self._metrics = None

    # -------------------------------------------------------------- helpers
    def _start(self, trainer: L.Trainer) -> None:
        if self._metrics is not None:
            self._metrics.close()
        # Under the run directory, not /tmp: a killed evaluation leaves its spill where the run is
        # (and the launcher clears it when the run starts again).
        spill = self.spill_dir or str(Path(trainer.default_root_dir) / "spill")
        self._metrics = AnomalyMetrics(self.aupro_variant, self.num_bins, spill)
        self._predictions = []

    def _update(self, outputs: Any, batch: Any, keep_predictions: bool) -> None:
        if self._metrics is None:
            raise RuntimeError("MetricsCallback: a batch ended before its epoch started")
        if not isinstance(outputs, EvaluationOutput):
            raise TypeError(
                "MetricsCallback: test_step/validation_step must return a src.contracts.EvaluationOutput "
                f"(AnomalyModule.evaluation_step), got {type(outputs).__name__}"
            )
        scored = outputs.batch
        self._metrics.update(
            outputs.anomaly_map,
            outputs.pred_score,
            scored.mask,
            scored.label,
            list(scored.category),
            list(scored.defect_type),
            scored.index,
            has_mask=scored.has_mask,
            path=list(scored.path),
        )
        if keep_predictions:
            self._predictions.append(_prediction_rows(outputs))

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> dict[str, Any]:
        if self._metrics is None:
            raise RuntimeError(f"MetricsCallback: {stage} epoch ended without having started")
        metrics, self._metrics = self._metrics, None
        result = metrics.compute()
        for owner in (pl_module, getattr(trainer, "datamodule", None)):
            extra = getattr(owner, "results_meta", None)
            if callable(extra):
                result["meta"].update(extra())
        if stage == "test" and (partial := partial_evaluation(result["meta"], trainer)):
            result["meta"]["partial"] = partial
        to_log = {}
        for name, values in [*result["categories"].items(), ("mean", result["mean"])]:
            for key in METRICS:
                if not math.isnan(values[key]):
                    to_log[f"{stage}/{name}/{key}"] = float(values[key])
        if to_log:
            # Identical on every rank (computed from the reduced state); sync_dist averages equal
            # values, which changes nothing and keeps Lightning's per-key DDP warning away.
            pl_module.log_dict(to_log, sync_dist=True)
        return result

    def _gather_predictions(self) -> dict[str, Any] | None:
        """Every rank's kept predictions on rank 0, de-duplicated by index, in dataset order.

        Returns the keyword arguments of :func:`~src.metrics.io.write_predictions`, or None.
        """
        gathered = all_gather_object(self._predictions)
        self._predictions = []
        first: dict[int, _Prediction] = {}
        for rows in (r for rank_rows in gathered for r in rank_rows):
            for row in rows:
                first.setdefault(row.index, row)  # DistributedSampler padding repeats indices
        if not first:
            return None
        rows = [first[k] for k in sorted(first)]
        return {
            "anomaly_maps": np.stack([r.anomaly_map for r in rows]),
            "masks": np.stack([r.mask.reshape(r.anomaly_map.shape) for r in rows]) > 0.5,
            "scores": np.array([r.pred_score for r in rows], dtype=np.float64),
            "labels": np.array([r.label for r in rows], dtype=np.int64),
            "categories": [r.category for r in rows],
            "defect_types": [r.defect_type for r in rows],
            "paths": [r.path for r in rows],
        }


@dataclass
class _Prediction:
    """One scored image on the CPU, as kept for ``predictions.npz``."""

    index: int
    anomaly_map: np.ndarray  # (H, W) float32
    mask: np.ndarray  # (1, H, W) float32
    pred_score: float
    label: int
    category: str
    defect_type: str
    path: str


def _prediction_rows(outputs: EvaluationOutput) -> list[_Prediction]:
    def cpu(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    b = outputs.batch
    maps, masks, scores = cpu(outputs.anomaly_map), cpu(b.mask), cpu(outputs.pred_score)
    rows = zip(b.index.tolist(), maps, masks, scores.tolist(), b.label.tolist(), b.category, b.defect_type, b.path,
               strict=True)
    return [_Prediction(int(i), m, k, float(s), int(y), str(c), str(d), str(p)) for i, m, k, s, y, c, d, p in rows]


def partial_evaluation(meta: dict[str, Any], trainer: L.Trainer) -> dict[str, Any] | None:
    """What was left out when fewer images were scored than the test split holds, else None."""
    expected = (meta.get("data") or {}).get("n_test_images")
    scored = meta.get("n_images")
    limit = getattr(trainer, "limit_test_batches", 1.0)
    if expected is None or scored is None or scored >= expected:
        return None
    return {"n_images_scored": int(scored), "n_test_images": int(expected), "limit_test_batches": limit}
