"""``python -m src.metrics PRED.npz``: same numbers as the accumulator, clear errors on bad files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from src.metrics.__main__ import evaluate, load_predictions, main
from src.postprocess import PostProcessor
from tests.metrics import reference
from tests.metrics.scenarios import make_category

ROOT = Path(__file__).resolve().parents[2]


def _write(path, **overrides):
    a = make_category("many_small", seed=21, n_images=10, size=16)
    b = make_category("bimodal_negative", seed=22, n_images=8, size=16)
    arrays = {
        "anomaly_maps": np.concatenate([a[0], b[0]]),
        "masks": np.concatenate([a[1], b[1]]).astype(np.uint8),
        "scores": np.concatenate([a[2], b[2]]),
        "labels": np.concatenate([a[3], b[3]]),
        "categories": np.array(["a"] * 10 + ["b"] * 8),
        "defect_types": np.concatenate([a[4], b[4]]),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


def test_cli_prints_metrics_json(tmp_path):
    arrays = _write(tmp_path / "pred.npz")
    proc = subprocess.run(
        [sys.executable, "-m", "src.metrics", str(tmp_path / "pred.npz"), "--output-dir", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    a = arrays["categories"] == "a"
    expected = reference.aupro_exact(arrays["anomaly_maps"][a], arrays["masks"][a].astype(bool))
    assert result["categories"]["a"]["pixel_aupro"] == pytest.approx(expected, abs=1e-3)
    assert set(result) == {"mean", "categories", "defect_types", "meta"}
    assert result["meta"]["n_images"] == 18 and result["meta"]["eval_size"] == [16, 16]
    assert (tmp_path / "out" / "metrics.json").is_file() and (tmp_path / "out" / "metrics.csv").is_file()


def test_sigma_and_variant_options(tmp_path):
    arrays = _write(tmp_path / "pred.npz")
    smoothed = dict(arrays, anomaly_maps=PostProcessor(sigma=2.0)(torch.from_numpy(arrays["anomaly_maps"])).numpy())
    direct = evaluate(smoothed, "anomalyclip")
    via_option = evaluate(load_predictions(tmp_path / "pred.npz"), "anomalyclip", sigma=2.0)
    assert via_option["categories"] == direct["categories"]
    b = arrays["categories"] == "b"
    expected = reference.aupro_anomalyclip(arrays["masks"][b], smoothed["anomaly_maps"][b])
    assert direct["categories"]["b"]["pixel_aupro"] == pytest.approx(expected, abs=1e-12)


def test_defect_types_are_optional(tmp_path):
    _write(tmp_path / "pred.npz", defect_types=None)
    result = evaluate(load_predictions(tmp_path / "pred.npz"))
    assert set(result["defect_types"]) == {"a/anomalous", "b/anomalous"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scores": None}, r"missing array\(s\) \['scores'\]"),
        ({"labels": np.zeros(5, np.int64)}, r"labels must have shape \(N,\) = \(18,\)"),
        ({"masks": np.zeros((18, 8, 8), np.uint8)}, r"masks must have shape \(N, H, W\) = \(18, 16, 16\)"),
        ({"masks": np.full((18, 16, 16), 255, np.uint8)}, "masks must hold only 0 and 1"),
        ({"anomaly_maps": np.zeros((18, 256))}, r"anomaly_maps must have shape \(N, H, W\)"),
    ],
)
def test_bad_files_are_named(tmp_path, capsys, overrides, message):
    _write(tmp_path / "pred.npz", **overrides)
    with pytest.raises(ValueError, match=message):
        load_predictions(tmp_path / "pred.npz")
    assert main([str(tmp_path / "pred.npz")]) == 2
    assert "error:" in capsys.readouterr().err
