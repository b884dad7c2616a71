"""Why a category's metric is undefined: the warning that names the reason (reported as null)."""

from __future__ import annotations

import math
import warnings


def warn_undefined(
    cat: str, metrics: dict[str, float], counts: dict[str, int], has_pixels: bool, variant: str
) -> None:
    """Warn once per category about its undefined (NaN) metrics, with the likely reason."""
    undefined = [k for k in metrics if math.isnan(metrics[k])]
    if not undefined:
        return
    n, n_anom = counts["n_images"], counts["n_anomalous"]
    reasons = []
    if n_anom in (0, n):
        reasons.append(f"{n_anom} of {n} images are anomalous")
    if not has_pixels:
        reasons.append("no image has a pixel mask")
    elif counts["n_regions"] == 0:
        reasons.append("no anomalous pixel in the masks")
    if not reasons and undefined == ["pixel_aupro"] and variant == "anomalyclip":
        reasons.append("fewer than two of the 200 grid thresholds give FPR < 0.3, the public code divides 0 by 0")
    reason = "; ".join(reasons) or "a class is missing or the score range is degenerate"
    warnings.warn(
        f"category {cat!r}: {', '.join(undefined)} undefined ({reason}); reported as null and left out of "
        "the mean (see meta.n_categories)",
        stacklevel=3,
    )
