"""AUPRO from exact histograms against the region-by-region reference, and the public-code grid helpers.

The histograms here are built in the test (one bin per distinct pixel score, region weights from
skimage's labelling in tests/metrics/reference.py), so ``curves.aupro`` is compared with
``reference.aupro_exact`` without any binning error: agreement is required to 1e-12.
"""

import numpy as np
import pytest

from src.metrics import aupro as pro
from src.metrics import curves
from tests.metrics import reference
from tests.metrics.scenarios import KINDS, make_category


def _exact_pro_histogram(maps, masks):
    """(neg, pos_weight, n_regions) with one bin per distinct score, ascending; weights via skimage."""
    maps = np.asarray(maps, dtype=np.float64)
    weight = np.zeros(maps.shape, dtype=np.float64)
    regions = reference.regions(masks)
    for i, region in regions:
        weight[i][region] = 1.0 / region.sum()
    values, inverse = np.unique(maps.ravel(), return_inverse=True)
    normal = ~np.asarray(masks, dtype=bool).ravel()
    neg = np.bincount(inverse[normal], minlength=values.size)
    pos_weight = np.bincount(inverse, weights=weight.ravel(), minlength=values.size)
    return neg, pos_weight, len(regions)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("max_fpr", [0.05, 0.3, 0.7, 1.0])
def test_aupro_on_exact_histograms_matches_reference(kind, max_fpr):
    maps, masks, *_ = make_category(kind, seed=KINDS.index(kind), n_images=6, size=12)
    neg, pos_weight, n_regions = _exact_pro_histogram(maps, masks)
    expected = reference.aupro_exact(maps, masks, max_fpr=max_fpr)
    assert curves.aupro(neg, pos_weight, n_regions, max_fpr=max_fpr) == pytest.approx(expected, abs=1e-12)


def test_aupro_default_limit_is_thirty_percent():
    # Normal pixels spread over 10 bins, all regions in the top one: PRO is 1 from FPR 0, so the
    # normalised area is 1 at any limit; a ramp of regions shows the limit instead.
    neg = np.ones(10)
    ramp = np.ones(10) / 10  # one region of 10 pixels, one pixel per bin: PRO == FPR
    assert curves.MAX_FPR == 0.3
    # PRO == FPR along the whole curve: area up to L is L^2 / 2, normalised L / 2.
    assert curves.aupro(neg, ramp, 1) == pytest.approx(0.15, abs=1e-12)
    assert curves.aupro(neg, ramp, 1, max_fpr=0.6) == pytest.approx(0.3, abs=1e-12)


def test_region_weights_sum_to_one_per_region():
    mask = np.zeros((7, 7), bool)
    mask[0, 0:3] = True  # a region of 3
    mask[3:5, 3:5] = True  # a region of 4
    mask[6, 6] = True  # touches nothing: a region of 1
    weights, n_regions = pro.region_weights(mask)
    assert n_regions == 3
    # In mask[mask] (row-major) order: the row of 3, the 2x2 block, the lone pixel.
    np.testing.assert_array_equal(weights, [1 / 3] * 3 + [1 / 4] * 4 + [1.0])
    assert weights.dtype == np.float64
    empty, none = pro.region_weights(np.zeros((3, 3), bool))
    assert none == 0 and empty.shape == (0,) and empty.dtype == np.float64


def test_anomalyclip_grid_is_the_public_arange():
    lo, hi = np.float32(0.1), np.float32(0.9)
    grid = pro.anomalyclip_thresholds(lo, hi)
    # The public code: np.arange(min, max, (max - min) / 200) on float32 scalars.
    np.testing.assert_array_equal(grid, np.arange(lo, hi, (hi - lo) / 200))
    assert pro.ANOMALYCLIP_STEPS == 200 and grid.size in (200, 201)
    assert grid[0] == lo and grid[-1] < hi
    for flat in (pro.anomalyclip_thresholds(lo, lo), pro.anomalyclip_thresholds(hi, lo)):
        assert flat.shape == (0,) and flat.dtype == np.float32


def test_count_above_is_strict():
    thresholds = np.array([0.0, 0.5, 1.0])
    values = np.array([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0], dtype=np.float32)
    # Brute force: how many thresholds each value exceeds strictly.
    expected = (values.astype(np.float64)[:, None] > thresholds[None, :]).sum(axis=1)
    np.testing.assert_array_equal(pro.count_above(values, thresholds), expected)
    np.testing.assert_array_equal(expected, [0, 0, 1, 1, 2, 2, 3])


def test_anomalyclip_aupro_from_counts_matches_a_float64_transcription():
    # Three thresholds, FPR 0.4 (dropped: not < 0.3), 0.2, 0.0; PRO 1.0, 0.75, 0.25.
    fp = np.array([4.0, 2.0, 0.0])
    pro_sum = np.array([2.0, 1.5, 0.5])  # two regions
    # Kept FPRs 0.2, 0.0 rescale to 1, 0; area = -(0 - 1) * (0.75 + 0.25) / 2 = 0.5.
    assert curves.aupro_anomalyclip(fp, 10.0, pro_sum, 2) == pytest.approx(0.5, abs=1e-15)
    # An FPR exactly at 0.3 is dropped too (strict <), as in the public code.
    at_limit = curves.aupro_anomalyclip(np.array([3.0, 2.0, 0.0]), 10.0, pro_sum, 2)
    assert at_limit == pytest.approx(0.5, abs=1e-15)
    for undefined in ((fp, 10.0, pro_sum, 0), (fp, 0.0, pro_sum, 2), (fp[:0], 10.0, pro_sum[:0], 2),
                      (np.array([5.0, 4.0]), 10.0, np.array([1.0, 1.0]), 2),  # every FPR >= 0.3
                      (np.array([4.0, 1.0, 1.0]), 10.0, pro_sum, 2)):  # one distinct kept FPR
        assert np.isnan(curves.aupro_anomalyclip(*undefined)), undefined


def _area_to(fpr, pro, limit):
    """Float64 trapezoid of (0, 0) + the points, cut at ``limit`` by linear interpolation, / limit."""
    xs, ys = [0.0], [0.0]
    for x, y in zip(fpr, pro):
        if x >= limit:
            x0, y0 = xs[-1], ys[-1]
            ys.append(y0 + (y - y0) * (limit - x0) / (x - x0) if x > x0 else y)
            xs.append(limit)
            break
        xs.append(x)
        ys.append(y)
    return sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1)) / limit


def test_float32_counts_are_accumulated_in_float64():
    # Counts may arrive as float32 (a summed GPU histogram). In float32, 2**24 + 1 == 2**24, which
    # would move the FPR of the middle point by 6e-8 and the area by ~1e-8.
    big = float(2**24)
    neg = np.array([1.0, big, 1.0], dtype=np.float32)  # ascending scores
    pos_weight = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    fp = np.cumsum([1.0, big, 1.0])  # descending order is the reverse of [1, big, 1]: the same
    pro = np.cumsum([0.0, 1.0, 0.0])
    expected = _area_to(fp / fp[-1], pro, 0.3)
    assert curves.aupro(neg, pos_weight, 1) == pytest.approx(expected, abs=1e-12)
    # Weights in float32: 1 + 2**-25 == 1 in float32 but not in float64.
    neg = np.array([9.0, 1.0, 0.0], dtype=np.float32)
    tiny = 2.0**-25
    pos_weight = np.array([1.0, tiny, 1.0], dtype=np.float32)
    fp = np.cumsum([0.0, 1.0, 9.0])
    pro = np.cumsum([1.0, tiny, 1.0]) / 2
    expected = _area_to(fp / fp[-1], pro, 0.3)
    assert curves.aupro(neg, pos_weight, 2) == pytest.approx(expected, abs=1e-12)
    assert abs(expected - _area_to(fp / fp[-1], np.array([1.0, 1.0, 2.0]) / 2, 0.3)) > 1e-10  # detectable


def test_anomalyclip_aupro_single_region_and_no_numpy_warnings():
    # One region (PRO is the region's fraction): FPR 0.25, 0.1, 0 -> rescaled 1, 0.4, 0; PRO 0.5, 0.75, 1.
    fp, pro_sum = np.array([5.0, 2.0, 0.0]), np.array([0.5, 0.75, 1.0])
    expected = (0.6 * (0.5 + 0.75) + 0.4 * (0.75 + 1.0)) / 2
    with np.errstate(all="raise"):  # undefined cases return nan before dividing by zero
        assert curves.aupro_anomalyclip(fp, 20.0, pro_sum, 1) == pytest.approx(expected, abs=1e-15)
        # float32 counts are divided in float64 (float32 would move 0.1 by 1.5e-9 and the area by 1e-9).
        got32 = curves.aupro_anomalyclip(fp.astype(np.float32), 20.0, pro_sum.astype(np.float32), 1)
        assert got32 == pytest.approx(expected, abs=1e-15)
        assert np.isnan(curves.aupro_anomalyclip(fp, 0.0, pro_sum, 1))
        assert np.isnan(curves.aupro_anomalyclip(fp, 20.0, pro_sum, 0))
        assert np.isnan(curves.aupro(np.array([0.0, 0.0]), np.array([0.0, 1.0]), 1))
        assert np.isnan(curves.aupro(np.array([3.0, 1.0]), np.array([0.0, 0.0]), 0))


def test_aupro_edge_histograms():
    with np.errstate(all="raise"):
        assert np.isnan(curves.aupro(np.zeros(0), np.zeros(0), 0))
        assert np.isnan(curves.aupro(np.zeros(0), np.zeros(0), 1))
    # A single normal pixel is enough: it lies below the region, so PRO is 1 from FPR 0.
    assert curves.aupro(np.array([1, 0]), np.array([0.0, 1.0]), 1) == pytest.approx(1.0, abs=1e-15)
    # ... and above it: FPR reaches 1 before any PRO, so the area up to 0.3 is 0.
    assert curves.aupro(np.array([0, 1]), np.array([1.0, 0.0]), 1) == 0.0


def test_single_region_weights():
    mask = np.zeros((4, 4), bool)
    mask[1:3, 0:2] = True
    weights, n_regions = pro.region_weights(mask)
    assert n_regions == 1
    np.testing.assert_array_equal(weights, [0.25] * 4)


def test_anomalyclip_aupro_rescales_from_the_smallest_kept_fpr():
    # Even the highest threshold has false positives: FPR 0.25, 0.15, 0.05 -> rescaled 1, 0.5, 0.
    # Three regions, so PRO = pro_sum / 3 (1/3 and 2/3 are inexact in float32: the division is float64).
    fp, pro_sum = np.array([5.0, 3.0, 1.0]), np.array([1.0, 2.0, 3.0])
    expected = (0.5 * (1 / 3 + 2 / 3) + 0.5 * (2 / 3 + 1.0)) / 2
    assert curves.aupro_anomalyclip(fp, 20.0, pro_sum, 3) == pytest.approx(expected, abs=1e-15)
    got32 = curves.aupro_anomalyclip(fp.astype(np.float32), 20.0, pro_sum.astype(np.float32), 3)
    assert got32 == pytest.approx(expected, abs=1e-15)


def test_aupro_keeps_the_segment_before_the_cut():
    # Points (FPR, PRO): (0, 0), (0.1, 0.5), (1, 1). The limit 0.3 falls in the second segment, so
    # the area is the first trapezoid plus the interpolated part of the second.
    neg, pos_weight = np.array([9, 1]), np.array([0.5, 0.5])
    y_cut = 0.5 + 0.5 * (0.3 - 0.1) / (1 - 0.1)
    expected = (0.1 * 0.5 / 2 + 0.2 * (0.5 + y_cut) / 2) / 0.3
    assert expected == pytest.approx(_area_to([0.1, 1.0], [0.5, 1.0], 0.3), abs=1e-15)
    assert curves.aupro(neg, pos_weight, 1) == pytest.approx(expected, abs=1e-15)
