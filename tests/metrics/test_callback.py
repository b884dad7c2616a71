"""MetricsCallback inside a real (CPU) Lightning test loop with a tiny fake method."""

import json
import math

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.loaders import collate_batch
from src.contracts import Batch, EvaluationOutput
from src.metrics.callback import MetricsCallback
from tests.metrics import reference
from tests.metrics.scenarios import make_category

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)


class _Data(Dataset):
    """Items of the suite's batch contract; the 'image' carries the map a fake method will return."""

    def __init__(self):
        parts = [make_category("many_small", seed=31, n_images=9, size=16),
                 make_category("ties", seed=32, n_images=7, size=16)]
        self.maps, self.masks, self.scores, self.labels, self.defects = (np.concatenate(x) for x in zip(*parts))
        self.categories = ["screw"] * 9 + ["tile"] * 7

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {
            "image": MEAN + torch.from_numpy(self.maps[i])[None].expand(3, -1, -1),
            "mask": torch.from_numpy(self.masks[i].astype(np.float32))[None],
            "label": int(self.labels[i]),
            "category": self.categories[i],
            "defect_type": str(self.defects[i]),
            "path": f"{self.categories[i]}/{i:03d}.png",
            "index": i,
            "has_mask": True,
        }


def _loader(data: _Data, batch_size: int) -> DataLoader:
    return DataLoader(data, batch_size=batch_size, collate_fn=collate_batch)


class _FakeMethod(L.LightningModule):
    """Returns the map carried by the image and the data's score of each index."""

    def __init__(self, scores: np.ndarray):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.scores = torch.from_numpy(scores)

    def test_step(self, batch: Batch, batch_idx: int) -> EvaluationOutput:
        return EvaluationOutput(anomaly_map=(batch.image - MEAN)[:, 0], pred_score=self.scores[batch.index],
                                batch=batch)

    def validation_step(self, batch, batch_idx):
        return self.test_step(batch, batch_idx)

    def results_meta(self):
        return {"method": "fake", "seed": 0}


def test_callback_writes_metrics_files(tmp_path):
    data = _Data()
    callback = MetricsCallback(save_predictions=True, num_bins=2**16)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[callback])
    logged = trainer.test(_FakeMethod(data.scores), _loader(data, 4), verbose=False)[0]

    result = json.loads((tmp_path / "metrics.json").read_text())
    screw = np.arange(9)
    expected = reference.aupro_exact(data.maps[screw], data.masks[screw])
    assert result["categories"]["screw"]["pixel_aupro"] == pytest.approx(expected, abs=1e-3)
    assert result["categories"]["tile"]["image_auroc"] == pytest.approx(
        reference.roc_auc(data.scores[9:], data.labels[9:]), abs=1e-12)
    assert result["meta"]["method"] == "fake" and result["meta"]["n_images"] == 16
    assert logged["test/mean/pixel_auroc"] == pytest.approx(result["mean"]["pixel_auroc"])
    assert "test/screw/image_ap" in logged
    assert math.isclose(callback.results["mean"]["image_f1max"], result["mean"]["image_f1max"])

    csv_rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert csv_rows[0] == "name,level,image_auroc,image_ap,image_f1max,pixel_auroc,pixel_ap,pixel_f1max,pixel_aupro"
    assert {r.split(",")[1] for r in csv_rows[1:]} == {"category", "defect_type", "mean"}

    with np.load(tmp_path / "predictions.npz") as npz:
        np.testing.assert_allclose(npz["anomaly_maps"], data.maps, atol=1e-5)  # image float round trip
        np.testing.assert_array_equal(npz["masks"], data.masks)
        assert list(npz["categories"]) == data.categories


def test_callback_names_bad_sample(tmp_path):
    class _Broken(_FakeMethod):
        def test_step(self, batch, batch_idx):
            out = super().test_step(batch, batch_idx)
            out.anomaly_map[-1, 0, 0] = float("nan")
            return out

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[MetricsCallback(spill_dir=str(tmp_path / "spill"))])
    with pytest.raises(ValueError, match=r"non-finite anomaly_map .*'screw'.*screw/003\.png"):
        data = _Data()
        trainer.test(_Broken(data.scores), _loader(data, 4), verbose=False)
    assert not any((tmp_path / "spill").rglob("*.maps"))  # spill cleaned up after the failure


def test_callback_in_validation_logs_val_keys(tmp_path):
    callback = MetricsCallback(num_bins=2**12)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[callback])
    data = _Data()
    logged = trainer.validate(_FakeMethod(data.scores), _loader(data, 5), verbose=False)[0]
    assert "val/mean/pixel_aupro" in logged and "val/tile/image_auroc" in logged
    assert callback.validation_results["meta"]["n_images"] == 16
    assert callback.results is None and not (tmp_path / "metrics.json").exists()  # files at test end only


def test_callback_refuses_an_untyped_step_output(tmp_path):
    class _Untyped(_FakeMethod):
        def test_step(self, batch, batch_idx):
            out = super().test_step(batch, batch_idx)
            return {"anomaly_map": out.anomaly_map, "pred_score": out.pred_score}

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[MetricsCallback(num_bins=2**12)])
    data = _Data()
    with pytest.raises(TypeError, match="must return a src.contracts.EvaluationOutput .*got dict"):
        trainer.test(_Untyped(data.scores), _loader(data, 4), verbose=False)
