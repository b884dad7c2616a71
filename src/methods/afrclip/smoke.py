"""Train and evaluate AFR-CLIP on the built-in benchmark with the quick settings; print before/after.

    python -m src.methods.afrclip.smoke [--epochs N] [--set key=value ...]

Builds the model from ``experiments/methods/afr.yaml`` + ``experiments/profiles/quick/afr.yaml``
(the settings ``make train METHOD=afr`` uses in the quick profile), the ``AnomalyDataModule`` on
``builtin-B`` (trained on ``builtin-A``'s test split, the cross-dataset halves), evaluates the
untrained model, trains, evaluates again with the suite's metrics (exact image AUROC, pixel AUROC
and AUPRO per category, unweighted mean) and reports the wall time of each phase. Random weights
offline: the figures show the pipeline works, not what AFR-CLIP achieves.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from datamodules.datamodule import AnomalyDataModule
from src.metrics.accumulator import AnomalyMetrics

from .lightning_model import AFRCLIP

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = (ROOT / "experiments/methods/afr.yaml", ROOT / "experiments/profiles/quick/afr.yaml")
METRICS = ("image_auroc", "pixel_auroc", "pixel_aupro")


def quick_settings() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Model init_args, data init_args and trainer settings of the method file + quick profile."""
    model, data, trainer = {}, {}, {}
    for path in CONFIGS:
        cfg = yaml.safe_load(path.read_text()) or {}
        model.update(cfg.get("model", {}).get("init_args", {}))
        data.update(cfg.get("data", {}).get("init_args", {}))
        trainer.update(cfg.get("trainer", {}))
    return model, data, trainer


@torch.no_grad()
def evaluate(model: AFRCLIP, loader) -> dict[str, float]:
    """Mean over categories of the suite's metrics on ``loader``."""
    model.eval()
    metrics = AnomalyMetrics()
    for i, batch in enumerate(loader):
        out = model.test_step(batch, i)
        metrics.update(out["anomaly_map"], out["pred_score"], out["mask"], out["label"], out["category"],
                       out["defect_type"], out["index"], out.get("has_mask"), out.get("path"))
    return {k: 100 * float(v) for k, v in metrics.compute()["mean"].items() if k in METRICS}


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="model init_args overrides, e.g. temperature=1.0 use_cmfr=false")
    args = parser.parse_args(argv)
    model_args, data_args, trainer_args = quick_settings()
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        model_args[key] = _parse_value(value)
    epochs = args.epochs if args.epochs is not None else int(trainer_args.get("max_epochs", 1))
    data_args = {**data_args, "dataset": "builtin-B", "aux_dataset": None, "num_workers": 0}

    L.seed_everything(0, workers=True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AFRCLIP(**model_args)
    datamodule = AnomalyDataModule(**data_args)
    datamodule.prepare_data()
    datamodule.setup("test")
    build_s = time.perf_counter() - start

    t0 = time.perf_counter()
    before = evaluate(model, datamodule.test_dataloader())
    eval_s = time.perf_counter() - t0
    print(f"[smoke] untrained: {before} ({eval_s:.0f}s)", flush=True)

    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    fit_s = time.perf_counter() - t0
    print(f"[smoke] fit: {epochs} epoch(s) in {fit_s:.0f}s", flush=True)

    t0 = time.perf_counter()
    after = evaluate(model, datamodule.test_dataloader())
    eval2_s = time.perf_counter() - t0
    total_s = time.perf_counter() - start

    meta = model.results_meta()
    print(f"AFR-CLIP smoke run: {model_args['backbone']} ({'random' if meta['clip_random_init'] else 'pretrained'}"
          f" CLIP), SP source {meta['sp_source']} (random CNN: {meta.get('sp_cnn_random_init')}), "
          f"{data_args['image_size']} px, {epochs} epoch(s), trainable params {meta['trainable_params']:,}")
    print(f"{'':10}" + "".join(f"{k:>14}" for k in METRICS))
    for name, values in (("before", before), ("after", after)):
        print(f"{name:10}" + "".join(f"{values.get(k, float('nan')):14.1f}" for k in METRICS))
    print(f"wall time: build {build_s:.1f}s, eval {eval_s:.1f}s, fit {fit_s:.1f}s, eval {eval2_s:.1f}s, "
          f"total {total_s:.1f}s")
    return {"before": before, "after": after, "fit_s": fit_s, "total_s": total_s}


if __name__ == "__main__":
    main()
