"""WandbResults: values and tables read back from the offline W&B run files, figures on disk."""

from __future__ import annotations

import os
import shutil
import threading

import lightning as L
import numpy as np
import pytest

from src.logging import WandbResults, per_category_rows, read_offline_run
from src.logging.offline import OfflineRunError
from src.logging.samples import Sample, SampleStore, load_samples
from src.metrics.accumulator import METRICS
from src.metrics.callback import MetricsCallback
from tests.logging.tiny import CATEGORIES, TinyModule, loader


def _trainer(tmp_path, logger, figure_dir=None) -> tuple[L.Trainer, MetricsCallback, WandbResults]:
    metrics, results = MetricsCallback(num_bins=4096, output_dir=str(tmp_path)), WandbResults(figure_dir=figure_dir)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=logger, callbacks=[metrics, results],
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path))
    return trainer, metrics, results


@pytest.fixture()
def offline(monkeypatch):
    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
                       "WANDB_DISABLE_GIT": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def test_logged_values_and_tables_read_back(tmp_path, offline) -> None:
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    # A config larger than one 32 KiB log block exercises the reader's chunk reassembly.
    blob = "x" * 70_000
    logger = WandbLogger(project="test", name="tiny", save_dir=str(tmp_path), offline=True, tags=["tiny"],
                         config={"ablation": {"table": "t", "row": "r"}, "blob": blob}, group="t")
    trainer, metrics, _ = _trainer(tmp_path, logger)
    trainer.test(TinyModule(), dataloaders=loader(), verbose=False)
    wandb.finish()
    results = metrics.results

    run = read_offline_run(tmp_path / "wandb", wait_s=120)
    assert run.config["ablation"] == {"table": "t", "row": "r"} and run.config["blob"] == blob
    assert run.group == "t" and "tiny" in run.tags
    for metric in ("image_auroc", "pixel_auroc", "pixel_aupro"):
        assert run.values(f"test/mean/{metric}") == [pytest.approx(results["mean"][metric], abs=1e-6)]
        for category in CATEGORIES:
            logged = run.values(f"test/{category}/{metric}")
            assert logged == [pytest.approx(results["categories"][category][metric], abs=1e-6)]
    columns, rows = run.table("test/per_category")
    assert columns == ["category", *METRICS]
    assert [r[0] for r in rows] == [*CATEGORIES, "mean"]
    expected = per_category_rows(results)
    for got, want in zip(rows, expected, strict=True):
        assert got[1:] == pytest.approx([float("nan") if v is None else v for v in want[1:]], nan_ok=True)
    columns, rows = run.table("test/anomaly_maps")
    assert columns == ["category", "samples", "figure"]
    assert [(r[0], r[1]) for r in rows] == [(c, 2) for c in CATEGORIES]
    for category in CATEGORIES:
        (image,) = run.values(f"test/figures/{category}")
        assert image["_type"] == "image-file" and (run.files_dir / image["path"]).stat().st_size > 1000
    _unflushed_tail_is_waited_for_or_refused(run.path, tmp_path / "copy")


def _unflushed_tail_is_waited_for_or_refused(run_dir, copy_dir) -> None:
    # A file cut at a block boundary is what a reader sees when wandb.finish() returned before W&B's
    # service flushed the last block: it must not parse as a run with an empty config.
    shutil.copytree(run_dir, copy_dir)
    (log_file,) = copy_dir.glob("run-*.wandb")
    whole = log_file.read_bytes()
    log_file.write_bytes(whole[:32768])
    with pytest.raises(OfflineRunError, match="no exit record"):
        read_offline_run(copy_dir)
    threading.Timer(0.5, log_file.write_bytes, args=(whole,)).start()
    assert read_offline_run(copy_dir, wait_s=30).config["ablation"] == {"table": "t", "row": "r"}


def test_figures_without_wandb_keep_lowest_indices(tmp_path) -> None:
    trainer, _, callback = _trainer(tmp_path, logger=False, figure_dir=str(tmp_path / "figs"))
    trainer.test(TinyModule(), dataloaders=loader(), verbose=False)
    assert not (tmp_path / "wandb").exists()
    for category in CATEGORIES:
        png = tmp_path / "figs" / f"{category}.png"
        assert png.stat().st_size > 1000
    samples = load_samples(tmp_path / "figs" / "samples.npz")
    # TinySet: category = index % 2, anomalous when index % 3 == 1.
    kept = {(s.category, s.label): s.index for s in samples}
    assert kept == {("alpha", 1): 4, ("alpha", 0): 0, ("beta", 1): 1, ("beta", 0): 3}
    anomalous = next(s for s in samples if s.index == 4)
    assert anomalous.mask.sum() == 25 and anomalous.image.dtype == np.uint8 and anomalous.image.shape == (16, 16, 3)
    assert os.path.basename(anomalous.path) == "4.png" and anomalous.defect_type == "square"


def _sample(category: str, label: int, index: int) -> Sample:
    zeros = np.zeros((4, 4), np.float32)
    return Sample(category, index, label, "d", "", 0.0, np.zeros((4, 4, 3), np.uint8), zeros.astype(np.uint8), zeros)


def test_sample_store_merges_shards_to_the_single_process_choice() -> None:
    shard_a, shard_b, single = SampleStore(2), SampleStore(2), SampleStore(2)
    for index in range(20):
        sample = _sample("c", index % 2, index)
        (shard_a if index % 2 == 0 else shard_b).extend([sample])
        single.extend([sample])
        if index == 0:
            shard_b.extend([sample])  # DistributedSampler padding repeats the first samples
    merged = SampleStore(2)
    for part in (shard_b.samples(), shard_a.samples()):
        merged.extend(part)
    assert [s.index for s in merged.samples()] == [s.index for s in single.samples()] == [1, 3, 0, 2]
