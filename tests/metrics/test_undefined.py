"""The warning for undefined (NaN) metrics: which reason it gives, by its text."""

from __future__ import annotations

import math

import pytest

from src.metrics.undefined import warn_undefined

NAN = math.nan
TAIL = "; reported as null and left out of the mean (see meta.n_categories)"


def _message(metrics: dict, n: int = 4, anomalous: int = 2, regions: int = 3, pixels: bool = True,
             variant: str = "exact") -> str:
    counts = {"n_images": n, "n_anomalous": anomalous, "n_regions": regions}
    with pytest.warns(UserWarning) as caught:
        warn_undefined("c", metrics, counts, pixels, variant)
    assert len(caught) == 1
    return str(caught[0].message)


def test_each_reason_by_its_text() -> None:
    assert _message({"pixel_auroc": NAN, "pixel_ap": 0.5}, regions=0) == (
        "category 'c': pixel_auroc undefined (no anomalous pixel in the masks)" + TAIL)
    assert _message({"image_auroc": NAN, "pixel_auroc": NAN}, anomalous=4, pixels=False) == (
        "category 'c': image_auroc, pixel_auroc undefined (4 of 4 images are anomalous; no image has a pixel "
        "mask)" + TAIL)
    assert _message({"pixel_auroc": NAN}, regions=1) == (
        "category 'c': pixel_auroc undefined (a class is missing or the score range is degenerate)" + TAIL)


def test_the_public_aupro_reason_only_for_its_variant_and_only_alone() -> None:
    assert _message({"pixel_aupro": NAN}, variant="anomalyclip") == (
        "category 'c': pixel_aupro undefined (fewer than two of the 200 grid thresholds give FPR < 0.3, the "
        "public code divides 0 by 0)" + TAIL)
    assert "degenerate" in _message({"pixel_aupro": NAN}, variant="exact")
    assert "grid thresholds" not in _message({"pixel_aupro": NAN}, regions=0, variant="anomalyclip")
    assert "grid thresholds" not in _message({"pixel_auroc": NAN, "pixel_aupro": NAN}, variant="anomalyclip")


def test_nothing_undefined_nothing_said(recwarn: pytest.WarningsRecorder) -> None:
    warn_undefined("c", {"pixel_auroc": 0.5}, {"n_images": 4, "n_anomalous": 0, "n_regions": 0}, False, "exact")
    assert not recwarn.list
