"""The whole ``compute()`` result of a small hand-made evaluation, key by key.

Image metrics are worked out by hand in the comments; pixel metrics come from the brute-force
references (the maps' values are far apart, so binning changes nothing).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from src.metrics import accumulator
from src.metrics.accumulator import METRICS, PIXEL_METRICS, AnomalyMetrics, _to_numpy
from tests.metrics import reference

NAN = math.nan


def _maps(n: int, h: int, w: int, seed: int) -> np.ndarray:
    # distinct values on a coarse grid: no two pixels share a bin of 2**16
    values = np.random.default_rng(seed).permutation(n * h * w) / (n * h * w)
    return values.reshape(n, h, w).astype(np.float32)


def _zeta():
    """5 images 4x4: normal (0.1, 0.4), crack (0.3; 0.8 without mask), unnamed defect (0.9)."""
    maps = _maps(5, 4, 4, seed=0)
    masks = np.zeros((5, 4, 4), bool)
    masks[2, 0:2, 0:2] = True  # one region
    masks[3, 0, 0] = masks[3, 2:4, 2:4] = True  # two regions
    masks[4, 1, 1] = True  # not counted: has_mask False
    return dict(anomaly_map=maps, pred_score=np.array([0.1, 0.4, 0.3, 0.9, 0.8]), mask=masks,
                label=[0, 0, 1, 1, 1], category=["zeta"] * 5, defect_type=["good", "ok", "crack", "", "crack"],
                index=[0, 1, 2, 3, 4], has_mask=[True, True, True, True, False])


def _alpha():
    """3 images 2x3: normal 0.2, hole 0.7 (one region), hole 0.1 without mask."""
    maps = _maps(3, 2, 3, seed=1)
    masks = np.zeros((3, 2, 3), bool)
    masks[1, 0, 1:] = True
    return dict(anomaly_map=maps, pred_score=np.array([0.2, 0.7, 0.1]), mask=masks, label=[0, 1, 1],
                category=["alpha"] * 3, defect_type=["good", "hole", "hole"], index=[5, 6, 7],
                has_mask=[True, True, False])


def _mid():
    """2 images without any mask: normal 0.5, scratch 0.6; pixel metrics undefined."""
    return dict(anomaly_map=np.zeros((2, 4, 4)), pred_score=np.array([0.5, 0.6]), mask=np.zeros((2, 4, 4)),
                label=[0, 1], category=["mid"] * 2, defect_type=["good", "scratch"], index=[8, 9],
                has_mask=[False, False])


def _pixel(batch: dict, chosen: list[int]) -> dict[str, float]:
    maps, masks = batch["anomaly_map"][chosen], batch["mask"][chosen]
    return {"pixel_auroc": reference.roc_auc(maps, masks), "pixel_ap": reference.average_precision(maps, masks),
            "pixel_f1max": reference.f1_max(maps, masks), "pixel_aupro": reference.aupro_exact(maps, masks)}


def _image(auroc: float, ap: float, f1: float) -> dict[str, float]:
    return {"image_auroc": auroc, "image_ap": ap, "image_f1max": f1}


def _expected_categories(zeta: dict, alpha: dict) -> tuple[dict, dict]:
    # zeta: negatives 0.1, 0.4; positives 0.3, 0.8, 0.9. AUROC 5/6 (0.3 loses to 0.4);
    # AP = 1/3 + 1/3 + 1/3 * 3/4 = 11/12; F1 best at 0.3: P 3/4, R 1 -> 6/7.
    # zeta/crack: positives 0.3, 0.8: AUROC 3/4, AP 1/2 + 1/2 * 2/3 = 5/6, F1 at 0.3: P 2/3, R 1 -> 4/5.
    # zeta/anomalous (empty defect type): positive 0.9 above both: all 1.
    # alpha (= alpha/hole): negative 0.2; positives 0.7, 0.1: AUROC 1/2, AP 1/2 + 1/2 * 2/3 = 5/6, F1 4/5.
    # mid (= mid/scratch): 0.6 above 0.5: all 1; no pixel metric.
    no_pixels = dict.fromkeys(PIXEL_METRICS, NAN)
    categories = {"alpha": {**_image(0.5, 5 / 6, 0.8), **_pixel(alpha, [0, 1])},
                  "mid": {**_image(1.0, 1.0, 1.0), **no_pixels},
                  "zeta": {**_image(5 / 6, 11 / 12, 6 / 7), **_pixel(zeta, [0, 1, 2, 3])}}
    defects = {"alpha/hole": categories["alpha"], "mid/scratch": categories["mid"],
               "zeta/anomalous": {**_image(1.0, 1.0, 1.0), **_pixel(zeta, [0, 1, 3])},
               "zeta/crack": {**_image(0.75, 5 / 6, 0.8), **_pixel(zeta, [0, 1, 2])}}
    return categories, defects


def _assert_same(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for name, metrics in expected.items():
        assert list(got[name]) == list(metrics), name
        for key, value in metrics.items():
            assert math.isclose(got[name][key], value, abs_tol=1e-9) or (math.isnan(value) and math.isnan(
                got[name][key])), (name, key, got[name][key], value)


class _Clock:
    """perf_counter that advances 0.12345 s per call: update() and compute() each cost that much."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        self.now += 0.12345
        return self.now


def test_compute_result_is_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accumulator, "time", _Clock())
    zeta, alpha, mid = _zeta(), _alpha(), _mid()
    acc = AnomalyMetrics(num_bins=2**16)
    acc.update(**{**zeta, "anomaly_map": torch.from_numpy(zeta["anomaly_map"])[:, None],  # (B, 1, H, W) tensors
                  "mask": torch.from_numpy(zeta["mask"]).float()[:, None], "index": torch.tensor(zeta["index"])})
    acc.update(**alpha)
    acc.update(**mid)
    with pytest.warns(UserWarning) as caught:
        result = acc.compute()
    assert [str(w.message) for w in caught] == [
        "category 'mid': pixel_auroc, pixel_ap, pixel_f1max, pixel_aupro undefined (no image has a pixel mask); "
        "reported as null and left out of the mean (see meta.n_categories)"]
    categories, defects = _expected_categories(zeta, alpha)
    _assert_same(result["categories"], categories)
    _assert_same(result["defect_types"], defects)
    mean = {k: np.mean([c[k] for c in categories.values() if not math.isnan(c[k])]) for k in METRICS}
    _assert_same({"mean": result["mean"]}, {"mean": mean})
    assert list(result) == ["mean", "categories", "defect_types", "meta"]
    assert result["meta"] == {
        "aupro_variant": "exact",
        "n_categories": {**dict.fromkeys(("image_auroc", "image_ap", "image_f1max"), 3),
                         **dict.fromkeys(PIXEL_METRICS, 2)},
        "n_images": 10,
        "eval_size": [[2, 3], [4, 4]],  # sizes of the maps with masks only; mid's are not counted
        "num_bins": 2**16,
        "counts": {"alpha": {"n_images": 3, "n_anomalous": 2, "n_regions": 1},
                   "mid": {"n_images": 2, "n_anomalous": 1, "n_regions": 0},
                   "zeta": {"n_images": 5, "n_anomalous": 3, "n_regions": 3}},
        "wall_s": 0.494,  # three updates and compute, 0.12345 s each on the fake clock, to the millisecond
    }


def test_one_size_is_one_pair_and_positions_follow_arrival_without_index() -> None:
    acc = AnomalyMetrics(num_bins=2**8)
    alpha = _alpha()
    for i in range(3):  # three updates of one image each; index None numbers them 0, 1, 2
        acc.update(**{k: v[i : i + 1] for k, v in alpha.items() if k not in ("index", "has_mask")}, index=None)
    result = acc.compute()
    assert result["meta"]["eval_size"] == [2, 3]
    assert result["meta"]["n_images"] == 3  # none taken for a duplicate
    assert result["categories"]["alpha"]["image_auroc"] == 0.5


def test_positions_stay_exact_integers() -> None:
    # 2**24 + 1 is not a float32, 2**53 + 1 not a float64: positions must never pass through floats
    acc = AnomalyMetrics(num_bins=2**8)
    maps, masks = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
    maps[1, 0, 0], masks[1, 0, 0] = 1.0, 1.0
    acc.update(maps, [0.0, 1.0], masks, [0, 1], ["c"] * 2, ["good", "x"], torch.tensor([2**24, 2**24 + 1]))
    acc.update(maps, [0.0, 1.0], masks, [0, 1], ["d"] * 2, ["good", "x"], np.array([2**53, 2**53 + 1]))
    assert acc.compute()["meta"]["n_images"] == 4


def test_half_precision_tensors_are_read_as_float32() -> None:
    values = torch.tensor([0.5, -2.0, 3.0e4], dtype=torch.bfloat16)
    got = _to_numpy(values, np.float64)
    assert got.dtype == np.float64 and got.tolist() == [0.5, -2.0, 29952.0]  # 3e4 rounds to 29952 in bf16
    assert _to_numpy(values.half()).dtype == np.float32


def test_a_map_that_overflows_float32_is_refused() -> None:
    # 1e39 is finite in float64 but inf once stored as float32, as the spill files do
    maps = np.zeros((3, 2, 2))
    maps[1, 1, 0] = maps[2, 0, 0] = 1e39
    acc = AnomalyMetrics()
    with np.errstate(over="ignore"), pytest.raises(
            ValueError, match=r"non-finite anomaly_map .* category 'c', first bad sample '<sample index 1>'"):
        acc.update(maps, [0.0] * 3, np.zeros((3, 2, 2)), [0] * 3, ["c"] * 3, ["good"] * 3, [0, 1, 2])
    with pytest.raises(ValueError, match=r"non-finite pred_score .* category 'c', first bad sample 'b'"):
        acc.update(np.zeros((3, 2, 2)), [0.0, math.inf, math.nan], np.zeros((3, 2, 2)), [0] * 3, ["c"] * 3,
                   ["good"] * 3, [0, 1, 2], path=["a", "b", "c"])
    acc.close()


def test_compute_is_final() -> None:
    acc = AnomalyMetrics(num_bins=2**8)
    acc.update(**_mid())
    with pytest.warns(UserWarning):
        acc.compute()
    message = r"^AnomalyMetrics: compute\(\) was already called; use a new instance per evaluation$"
    with pytest.raises(RuntimeError, match=message):
        acc.compute()
    with pytest.raises(RuntimeError, match=message):
        acc.update(**_mid())
