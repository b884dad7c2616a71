"""Histogram metrics against the sort-based references: exact on distinct scores, close when binned."""

import numpy as np
import pytest

from src.metrics import curves
from tests.metrics import reference


def _adversarial_scores(kind, rng, n=400):
    labels = (rng.random(n) < 0.4).astype(np.int64)
    if kind == "ties":
        scores = np.round(rng.normal(size=n) + labels, 0)
    elif kind == "outliers":
        scores = rng.normal(size=n) + labels
        scores[:3] = 1e4
    elif kind == "negative":
        scores = np.where(rng.random(n) < 0.5, -1e3, -1.0) + rng.normal(size=n) + 0.5 * labels
    else:  # near-constant, as an untrained model's probabilities
        scores = 0.5 + rng.uniform(-1e-4, 1e-4, n) + 1e-5 * labels
    return scores, labels


def _binned(scores, labels, num_bins):
    lo, hi = scores.min(), scores.max()
    idx = np.clip(((scores - lo) * (num_bins / (hi - lo))).astype(np.int64), 0, num_bins - 1)
    neg = np.bincount(idx[labels == 0], minlength=num_bins)
    pos = np.bincount(idx[labels == 1], minlength=num_bins)
    return neg, pos


@pytest.mark.parametrize("kind", ["ties", "outliers", "negative", "near_constant"])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_histogram_matches_reference(kind, seed):
    scores, labels = _adversarial_scores(kind, np.random.default_rng(seed))
    neg, pos = curves.exact_histogram(scores, labels)
    assert curves.auroc(neg, pos) == pytest.approx(reference.roc_auc(scores, labels), abs=1e-12)
    assert curves.average_precision(neg, pos) == pytest.approx(reference.average_precision(scores, labels), abs=1e-12)
    assert curves.f1_max(neg, pos) == pytest.approx(reference.f1_max(scores, labels), abs=1e-12)


@pytest.mark.parametrize("kind", ["ties", "negative", "near_constant"])
def test_binned_within_tolerance(kind):
    scores, labels = _adversarial_scores(kind, np.random.default_rng(3), n=3000)
    neg, pos = _binned(scores, labels, 2**20)
    assert curves.auroc(neg, pos) == pytest.approx(reference.roc_auc(scores, labels), abs=1e-3)
    assert curves.average_precision(neg, pos) == pytest.approx(reference.average_precision(scores, labels), abs=1e-3)
    assert curves.f1_max(neg, pos) == pytest.approx(reference.f1_max(scores, labels), abs=1e-3)


def test_coarse_bins_are_detectably_wrong():
    # Guards the test above: with 4 bins the approximation must fail, so the tolerance test can fail.
    scores, labels = _adversarial_scores("negative", np.random.default_rng(3), n=3000)
    neg, pos = _binned(scores, labels, 4)
    assert abs(curves.auroc(neg, pos) - reference.roc_auc(scores, labels)) > 1e-3


def test_undefined_cases_are_nan():
    only_normal = (np.array([3, 1]), np.array([0, 0]))
    only_anomalous = (np.array([0, 0]), np.array([2, 5]))
    for fn in (curves.auroc, curves.average_precision, curves.f1_max):
        assert np.isnan(fn(*only_normal))
    assert np.isnan(curves.auroc(*only_anomalous))
    assert curves.average_precision(*only_anomalous) == 1.0  # sklearn's value: precision is 1 everywhere
    assert np.isnan(curves.aupro(np.array([4, 1]), np.array([0.0, 0.0]), 0))
    assert np.isnan(curves.aupro(np.array([0, 0]), np.array([1.0, 0.0]), 1))


def test_aupro_perfect_random_and_constant():
    # Perfect separation: PRO reaches 1 before any false positive.
    assert curves.aupro(np.array([10, 0]), np.array([0.0, 1.0]), 1) == pytest.approx(1.0)
    # Every pixel tied: the curve is the diagonal, area 0.3^2 / 2 / 0.3 = 0.15.
    assert curves.aupro(np.array([10]), np.array([1.0]), 1) == pytest.approx(0.15)
    # Interpolation at FPR 0.3 inside a bin: 2 of 4 normal pixels in the top bin with all regions.
    assert curves.aupro(np.array([2, 2]), np.array([0.0, 1.0]), 1) == pytest.approx(
        (0.3 * (0 + 0.6) / 2) / 0.3
    )


def test_regions_use_8_connectivity():
    from src.metrics.aupro import region_weights

    mask = np.zeros((6, 6), bool)
    mask[1, 1] = mask[2, 2] = True  # diagonal neighbours: one region
    mask[4, 4] = True  # a single pixel: a second region
    weights, n_regions = region_weights(mask)
    assert n_regions == 2
    np.testing.assert_allclose(weights, [0.5, 0.5, 1.0])


def test_exact_histogram_counts_per_distinct_score():
    scores = np.array([0.5, -1.0, 0.5, 2.0, 3.0, -1.0], dtype=np.float32)
    labels = np.array([1, 0, 0, 0, 0, 1])
    neg, pos = curves.exact_histogram(scores, labels)
    # Distinct scores ascending: -1, 0.5, 2, 3; the top two hold only normal samples, so the
    # anomalous counts must still have four entries.
    np.testing.assert_array_equal(neg, [1, 1, 1, 1])
    np.testing.assert_array_equal(pos, [1, 1, 0, 0])
    neg, pos = curves.exact_histogram(scores, 1 - labels)
    np.testing.assert_array_equal(pos, [1, 1, 1, 1])
    np.testing.assert_array_equal(neg, [1, 1, 0, 0])
    for empty in curves.exact_histogram(np.zeros(0), np.zeros(0, dtype=np.int64)):
        assert empty.shape == (0,)


def test_single_sample_classes_are_defined():
    # One normal and one anomalous sample are enough for every metric (only an absent class is not).
    neg, pos = np.array([1, 0, 3]), np.array([0, 1, 0])  # ascending: normal, anomalous, 3 normal
    # Brute force over pairs: the anomalous sample beats 1 of 4 normal ones.
    assert curves.auroc(neg, pos) == pytest.approx(0.25, abs=1e-15)
    assert curves.auroc(np.array([0, 3]), np.array([1, 0])) == 0.0  # 3 normal above it
    assert curves.auroc(np.array([1, 0]), np.array([0, 1])) == 1.0
    # AP: precision 1/4 when the anomalous sample is reached (3 normal above it); F1 = 2*1/(1+3+1).
    assert curves.average_precision(neg, pos) == pytest.approx(0.25, abs=1e-15)
    assert curves.f1_max(neg, pos) == pytest.approx(0.4, abs=1e-15)


def test_empty_top_bins_are_skipped():
    # Binned pixel histograms have empty bins, also above every score: no threshold is taken there.
    neg, pos = np.array([2, 1, 0, 0]), np.array([0, 1, 1, 0])
    scores = np.array([0, 0, 1, 1, 2])
    labels = np.array([0, 0, 0, 1, 1])
    with np.errstate(all="raise"):
        assert curves.average_precision(neg, pos) == pytest.approx(reference.average_precision(scores, labels))
        assert curves.f1_max(neg, pos) == pytest.approx(reference.f1_max(scores, labels))
        assert curves.auroc(neg, pos) == pytest.approx(reference.roc_auc(scores, labels))


def test_float32_counts_are_summed_in_float64():
    # In float32, 2**24 + 1 == 2**24: the cumulative counts must be float64 whatever the input dtype.
    big = float(2**24)
    neg32, pos32 = np.array([big, 1.0, 0.0], dtype=np.float32), np.array([1.0, 0.0, 1.0], dtype=np.float32)
    neg64, pos64 = neg32.astype(np.float64), pos32.astype(np.float64)
    # Exact float64 values (independent): two anomalous samples, one at the top (above every normal
    # sample) and one at the bottom tied with 2**24 normal ones; one normal sample in between.
    n_neg = big + 1
    assert curves.auroc(neg32, pos32) == pytest.approx((n_neg + big / 2) / (2 * n_neg), abs=1e-15)
    f1_at_bottom = 2 * 2 / (2 + n_neg + 2)
    assert curves.f1_max(neg32, pos32) == pytest.approx(max(2 / 3, f1_at_bottom), abs=1e-15)
    assert curves.average_precision(neg32, pos32) == pytest.approx(0.5 * 1 + 0.5 * 2 / (2 + n_neg), abs=1e-15)
    for fn in (curves.auroc, curves.f1_max, curves.average_precision):
        assert fn(neg32, pos32) == fn(neg64, pos64)
        assert fn(pos32, neg32) == fn(pos64, neg64)  # the large count on the anomalous side


def test_absent_class_is_nan_without_dividing_by_zero():
    # The class check comes first: numpy must not be asked for 0 / 0 (a RuntimeWarning in every log).
    with np.errstate(all="raise"):
        assert np.isnan(curves.auroc(np.array([3, 1]), np.array([0, 0])))
        assert np.isnan(curves.auroc(np.array([0, 0]), np.array([2, 5])))
        assert np.isnan(curves.average_precision(np.array([3, 1]), np.array([0, 0])))
        assert np.isnan(curves.f1_max(np.array([3, 1]), np.array([0, 0])))
