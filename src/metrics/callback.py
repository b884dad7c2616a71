"""Lightning callback: feeds test/validation outputs to :class:`AnomalyMetrics`, logs and writes results."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from src.metrics.accumulator import AUPRO_VARIANTS, METRICS, AnomalyMetrics
from src.metrics.distributed import all_gather_object
from src.metrics.io import write_metrics, write_predictions

log = logging.getLogger(__name__)

#: Fields read from the step output, falling back to the batch for the pass-through ones.
OUTPUT_FIELDS = ("anomaly_map", "pred_score")
PASSTHROUGH_FIELDS = ("mask", "label", "category", "defect_type", "index")


class MetricsCallback(L.Callback):
    """Computes every image and pixel metric per category at the end of test and validation epochs.

    The LightningModule's ``test_step`` / ``validation_step`` returns a dict with ``anomaly_map``
    (B, H, W) post-processed, ``pred_score`` (B,) raw, and the batch fields ``mask``, ``label``,
    ``category``, ``defect_type``, ``index`` (taken from the batch when absent from the output),
    optionally ``has_mask`` (B,) and ``path``.

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
        self._update(outputs, batch, keep_predictions=self.save_predictions)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
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
        if not trainer.sanity_checking:
            self._update(outputs, batch, keep_predictions=False)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validation_results = self._finish(trainer, pl_module, "val")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
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
        if not isinstance(outputs, Mapping):
            raise TypeError(
                "MetricsCallback: test_step/validation_step must return a dict with 'anomaly_map' and "
                f"'pred_score', got {type(outputs).__name__}"
            )
        fields = {}
        for key in OUTPUT_FIELDS + PASSTHROUGH_FIELDS:
            if key in outputs:
                fields[key] = outputs[key]
            elif key in PASSTHROUGH_FIELDS and isinstance(batch, Mapping) and key in batch:
                fields[key] = batch[key]
            else:
                raise KeyError(
                    f"MetricsCallback: step output lacks {key!r} (and the batch does not carry it); "
                    f"expected keys: {OUTPUT_FIELDS + PASSTHROUGH_FIELDS}"
                )
        path = outputs.get("path", batch.get("path") if isinstance(batch, Mapping) else None)
        has_mask = outputs.get("has_mask", batch.get("has_mask") if isinstance(batch, Mapping) else None)
        self._metrics.update(
            fields["anomaly_map"],
            fields["pred_score"],
            fields["mask"],
            fields["label"],
            list(fields["category"]),
            list(fields["defect_type"]),
            fields["index"],
            has_mask=has_mask,
            path=list(path) if path is not None else None,
        )
        if keep_predictions:
            self._predictions.append(_to_cpu({**fields, "path": path}))

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
        """Every rank's kept predictions on rank 0, de-duplicated by index, in dataset order."""
        gathered = all_gather_object(self._predictions)
        self._predictions = []
        seen: dict[int, tuple[int, int, int]] = {}
        batches = [b for rank_batches in gathered for b in rank_batches]
        for bi, b in enumerate(batches):
            for i, idx in enumerate(b["index"].tolist()):
                seen.setdefault(int(idx), (bi, i, int(idx)))
        if not seen:
            return None
        order = [seen[k] for k in sorted(seen)]

        def take(key: str) -> list[Any]:
            return [batches[bi][key][i] for bi, i, _ in order]

        has_paths = all(b["path"] is not None for b in batches)
        return {
            "anomaly_maps": np.stack(take("anomaly_map")),
            "masks": (np.stack(take("mask")).reshape(len(order), *batches[0]["anomaly_map"].shape[-2:]) > 0.5),
            "scores": np.array(take("pred_score"), dtype=np.float64),
            "labels": np.array(take("label"), dtype=np.int64),
            "categories": take("category"),
            "defect_types": take("defect_type"),
            "paths": take("path") if has_paths else None,
        }


def _to_cpu(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().float().cpu().numpy() if value.is_floating_point() else value.cpu().numpy()
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = np.asarray(value) if key in ("index", "label", "pred_score") else value
    return out


def partial_evaluation(meta: dict[str, Any], trainer: L.Trainer) -> dict[str, Any] | None:
    """What was left out when fewer images were scored than the test split holds, else None."""
    expected = (meta.get("data") or {}).get("n_test_images")
    scored = meta.get("n_images")
    limit = getattr(trainer, "limit_test_batches", 1.0)
    if expected is None or scored is None or scored >= expected:
        return None
    return {"n_images_scored": int(scored), "n_test_images": int(expected), "limit_test_batches": limit}
