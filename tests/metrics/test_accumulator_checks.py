"""AnomalyMetrics' argument checks and messages, its spill folder, and NaN (not None) for undefined means."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from src.metrics.accumulator import METRICS, PIXEL_METRICS, AnomalyMetrics
from tests.metrics.scenarios import make_category


def _one_batch(acc: AnomalyMetrics, **changes: object) -> None:
    batch = dict(anomaly_map=np.zeros((2, 2, 2)), pred_score=[0.0, 1.0], mask=np.zeros((2, 2, 2)), label=[0, 1],
                 category=["c", "c"], defect_type=["good", "x"], index=[0, 1])
    acc.update(**{**batch, **changes})


def test_constructor_limits() -> None:
    for bins in (2, 3):
        AnomalyMetrics(num_bins=bins, chunk_pixels=1).close()  # the smallest valid values
    for bins in (1, 0, 2.0, 1.5):
        with pytest.raises(ValueError) as error:
            AnomalyMetrics(num_bins=bins)
        assert str(error.value) == f"num_bins must be an integer >= 2, got {bins!r}"
    with pytest.raises(ValueError) as error:
        AnomalyMetrics(chunk_pixels=0)
    assert str(error.value) == "chunk_pixels must be >= 1, got 0"
    with pytest.raises(ValueError) as error:
        AnomalyMetrics(aupro_variant="fast")
    assert str(error.value) == "aupro_variant='fast' is not valid; choose one of ('exact', 'anomalyclip')"


def test_smallest_settings_still_compute() -> None:
    acc = AnomalyMetrics(num_bins=2, chunk_pixels=1)
    masks = np.zeros((2, 2, 2))
    masks[1, 0, 0] = 1
    maps = np.zeros((2, 2, 2))
    maps[1, 0, 0] = 1.0
    _one_batch(acc, anomaly_map=maps, mask=masks)
    cat = acc.compute()["categories"]["c"]
    assert cat["image_auroc"] == 1.0 and cat["pixel_auroc"] == 1.0  # two bins separate 0 from 1


def test_update_messages() -> None:
    acc = AnomalyMetrics()
    for name in ("category", "defect_type"):
        with pytest.raises(ValueError) as error:
            _one_batch(acc, **{name: ["c"]})
        assert str(error.value) == f"{name} must have 2 entries (one per image), got 1"
    for name in ("index", "has_mask"):
        with pytest.raises(ValueError) as error:
            _one_batch(acc, **{name: [1, 1, 0]})
        assert str(error.value) == f"{name} must have 2 entries (one per image), got 3"
    bad = np.zeros((2, 2, 2))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError) as error:
        _one_batch(acc, anomaly_map=bad)
    assert str(error.value) == (
        "non-finite anomaly_map (NaN or inf) in category 'c', first bad sample '<sample index 0>'; "
        "metrics need finite scores (check the model output for overflow or a 0/0)")
    acc.close()


def test_spill_files_go_to_spill_dir(tmp_path: Path) -> None:
    acc = AnomalyMetrics(spill_dir=str(tmp_path))
    _one_batch(acc)
    (folder,) = tmp_path.iterdir()
    assert folder.name.startswith("anomaly-metrics-") and sorted(p.suffix for p in folder.iterdir()) == [
        ".maps", ".masks"]
    acc.close()
    assert list(tmp_path.iterdir()) == []


def test_undefined_means_are_nan() -> None:
    acc = AnomalyMetrics(num_bins=2**8)
    _one_batch(acc, has_mask=[False, False])
    with pytest.warns(UserWarning, match="no image has a pixel mask"):
        result = acc.compute()
    mean = result["mean"]
    assert all(isinstance(mean[k], float) and math.isnan(mean[k]) for k in PIXEL_METRICS)
    assert [mean[k] for k in METRICS if k not in PIXEL_METRICS] == [1.0, 1.0, 1.0]


def test_anomalyclip_reason_in_the_warning() -> None:
    maps, masks, scores, labels, defects = make_category("outliers", seed=1, n_images=8, size=16)
    acc = AnomalyMetrics(aupro_variant="anomalyclip")
    acc.update(maps, scores, masks, labels, ["c"] * 8, list(defects), np.arange(8))
    with pytest.warns(UserWarning) as caught:
        acc.compute()
    assert [str(w.message) for w in caught] == [
        "category 'c': pixel_aupro undefined (fewer than two of the 200 grid thresholds give FPR < 0.3, the public "
        "code divides 0 by 0); reported as null and left out of the mean (see meta.n_categories)"]


def test_column_vectors_and_height_one_maps_are_accepted() -> None:
    # (B, 1) scores, labels and indices and a (1, B) has_mask flatten to (B,); a (B, 1, W) map is 3-D (height 1),
    # not a (B, 1, H, W) map to squeeze
    acc = AnomalyMetrics(num_bins=2**8)
    maps = np.array([[[0.0, 0.1, 0.2, 0.3]], [[0.0, 0.9, 0.2, 0.3]]])
    masks = np.array([[[0, 0, 0, 0]], [[0, 1, 0.5, 0]]])  # 0.5 is not anomalous: binarised with > 0.5
    _one_batch(acc, anomaly_map=maps, mask=masks, pred_score=np.array([[0.0], [1.0]]), label=np.array([[0], [1]]),
               index=np.array([[0], [1]]), has_mask=np.array([[True, True]]))  # any shape with B entries
    result = acc.compute()
    assert result["meta"]["eval_size"] == [1, 4] and result["meta"]["counts"]["c"]["n_regions"] == 1
    # one anomalous pixel (0.9) above all seven normal ones, 0.2 at the 0.5 mask among them
    assert result["categories"]["c"]["pixel_auroc"] == 1.0 and result["categories"]["c"]["image_auroc"] == 1.0


def test_map_shape_messages() -> None:
    acc = AnomalyMetrics()
    for maps in (np.zeros((2, 2, 2, 2)), np.zeros((3, 2, 2))):
        with pytest.raises(ValueError) as error:
            _one_batch(acc, anomaly_map=maps, mask=np.zeros(maps.shape))
        assert str(error.value) == f"anomaly_map must have shape (B, H, W) with B=2 (pred_score's), got {maps.shape}"
    acc.close()


def test_mask_and_label_messages() -> None:
    acc = AnomalyMetrics()
    with pytest.raises(ValueError) as error:
        _one_batch(acc, mask=np.zeros((2, 1, 3, 3)))
    assert str(error.value) == ("mask must have shape (B, H, W) or (B, 1, H, W) matching anomaly_map (2, 2, 2), "
                                "got (2, 1, 3, 3)")
    with pytest.raises(ValueError) as error:
        _one_batch(acc, label=[0, 1, 1])
    assert str(error.value) == "label must have 2 entries (one per image), got 3"
    with pytest.raises(ValueError) as error:
        _one_batch(acc, label=[0, 2])
    assert str(error.value) == "label must be 0 (normal) or 1 (anomalous), got [0, 2]"
    acc.close()
