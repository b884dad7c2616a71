"""Binning in small float64 blocks into int32 bins gives exactly the histograms of one-shot int64 binning."""

import numpy as np
import pytest

from src.metrics import pixel_histograms
from src.metrics.accumulator import AnomalyMetrics
from tests.metrics.scenarios import KINDS, make_category


def _result(kind: str, variant: str) -> dict:
    maps, masks, scores, labels, defects = make_category(kind, seed=KINDS.index(kind), n_images=8, size=20)
    acc = AnomalyMetrics(aupro_variant=variant, chunk_pixels=1000)
    for s in range(0, len(scores), 3):
        sl = slice(s, s + 3)
        acc.update(maps[sl], scores[sl], masks[sl], labels[sl], ["c"] * len(scores[sl]), list(defects[sl]),
                   np.arange(s, s + len(scores[sl])))
    return acc.compute()


def _one_shot_bin(self, values, lo, scale, nb, groups):
    """The binning as first written: the whole chunk in float64, int64 bins."""
    scaled = (values.astype(np.float64) - lo) * scale
    return nb - 1 - np.clip(scaled.astype(np.int64), 0, nb - 1)


@pytest.mark.parametrize("kind", ["ties", "many_small", "bimodal_negative"])
@pytest.mark.parametrize("variant", ["exact", "anomalyclip"])
def test_blocked_binning_equals_one_shot(kind, variant, monkeypatch):
    monkeypatch.setattr(pixel_histograms, "BIN_BLOCK", 37)  # many blocks per chunk, ragged last one
    blocked = _result(kind, variant)
    monkeypatch.setattr(pixel_histograms.PixelHistograms, "_bin", _one_shot_bin)
    one_shot = _result(kind, variant)
    for key in ("categories", "defect_types"):
        assert blocked[key] == one_shot[key]


def test_bins_are_int32_while_every_group_offset_fits_and_int64_beyond():
    # The caller adds group * nb to each bin: int32 would wrap once groups * nb reaches 2**31.
    hist = pixel_histograms.PixelHistograms(spill=None, num_bins=4, chunk_pixels=8, aupro_variant="exact")
    values = np.array([0.0, 0.24, 0.26, 0.99, 1.0, -0.5, 2.0])
    expected = np.array([3, 3, 2, 0, 0, 3, 0])  # nb - 1 - floor((v - lo) * scale), clipped to [0, nb)
    small = hist._bin(values, 0.0, 4.0, 4, 2**29 - 1)
    assert small.dtype == np.int32 and np.array_equal(small, expected)
    large = hist._bin(values, 0.0, 4.0, 4, 2**29)
    assert large.dtype == np.int64 and np.array_equal(large, expected)


def test_float32_maps_are_binned_in_float64():
    # float32(0.1) - 0.1 is 1.49e-9 in float64 but 0 in float32: one bin apart at this scale.
    hist = pixel_histograms.PixelHistograms(spill=None, num_bins=4, chunk_pixels=8, aupro_variant="exact")
    values = np.array([0.1, 0.1 + 2e-9], dtype=np.float32)
    shift = (np.float64(values[0]) - 0.1) * 1e9  # 1.49 -> bin 4 - 1 - 1
    assert 1 < shift < 2 and hist._bin(values, 0.1, 1e9, 4, 1)[0] == 2
