"""Nearest-prototype distances without the full direct-difference ``cdist``: the same values, bit for bit.

Why: ``M^v`` needs, per location, only the few smallest of its ``L x N`` distances (225 x 225 at
2560 channels in the paper setting), but the direct-difference ``cdist`` that gives the exact
zero on a prototype (``aie.prototype_distances``) cost about 15% of the backbone's CPU time per
image. The matmul form ``|f|^2 + |p|^2 - 2 f.p`` is ten times cheaper but not exact. So:

1. screen: the matmul form in float64, with the prototypes' float64 copy and squared norms cached
   per prototype state, and a rigorous bound on how far it can be from ``cdist``'s own float
   result (summation error of both forms);
2. keep as candidates the pairs whose lower bound is at most the ``topk``-th smallest upper bound
   of their row: they contain every pair among the ``topk`` smallest ``cdist`` values;
3. recompute the candidates with ``cdist`` itself, one pair per batch item: its CPU kernel reduces
   each pair on its own, so the value is the one the full call gives (pinned by the tests).

Non-candidates are ``inf``, so ``min``/``topk`` return exactly the plain form's values. Used only
without autograd (evaluation, prototype setup); training keeps the plain ``cdist`` and its
backward. Falls back (returns None) off the CPU, on other dtypes, non-finite screens, or too many
candidates.
"""

from __future__ import annotations

import torch

CDIST_MODE = "donot_use_mm_for_euclid_dist"
#: Above this fraction of candidate pairs the plain ``cdist`` is cheaper than the screen + gather.
MAX_CANDIDATE_FRACTION = 0.125


def summation_bound(terms: int, dtype: torch.dtype) -> float:
    """gamma_n = n u / (1 - n u): the relative error bound of a sum of ``terms`` products in ``dtype``."""
    u = torch.finfo(dtype).eps / 2
    return terms * u / (1 - terms * u)


class PrototypeNorms:
    """float64 prototypes and their squared norms, recomputed when the prototypes tensor changed.

    A plain attribute of the model (not a buffer): checkpoints hold only the prototypes. Changed
    means another storage, version counter (``load_state_dict``, an in-place write), device,
    dtype or shape; an inference tensor (no version counter) is never cached.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: tuple[torch.Tensor, torch.Tensor] | None = None

    def get(self, prototypes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C) float64 prototypes and (N,) their squared norms."""
        if prototypes.is_inference():
            return self._compute(prototypes)
        key = (prototypes.data_ptr(), prototypes._version, prototypes.device, prototypes.dtype, prototypes.shape)
        if self._value is None or key != self._key:
            self._value, self._key = self._compute(prototypes), key
        return self._value

    @staticmethod
    def _compute(prototypes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            p64 = prototypes.detach().to(torch.float64)
            return p64, p64.square().sum(-1)


def candidate_mask(
    features: torch.Tensor, p64: torch.Tensor, p_sq: torch.Tensor, topk: int
) -> torch.Tensor | None:
    """(B, L, N) bool: the pairs that may be among a row's ``topk`` smallest ``cdist`` values."""
    f64 = features.to(torch.float64)
    f_sq = f64.square().sum(-1, keepdim=True)
    d2 = f_sq + p_sq - 2 * (f64 @ p64.T)
    if not bool(torch.isfinite(d2).all()):
        return None
    terms = features.shape[-1] + 4
    # float64 screen: cancellation error relative to the norms; cdist: a sum of non-negative
    # terms, relative to the distance itself. Doubled, so that sqrt's rounding cannot merge a
    # pair outside the bound with the k-th value.
    screen_err = 4 * summation_bound(terms, torch.float64) * (f_sq + p_sq)
    slack = 2 * summation_bound(terms, features.dtype) * (d2.abs() + screen_err) + screen_err
    kth_upper = (d2 + slack).kthvalue(topk, dim=-1, keepdim=True).values
    return d2 - slack <= kth_upper


def screened_cdist(
    features: torch.Tensor, prototypes: torch.Tensor, topk: int, norms: PrototypeNorms
) -> torch.Tensor | None:
    """(B, L, N) ``cdist`` values at the candidate pairs, ``inf`` elsewhere; None to use the plain form."""
    # CPU only: the per-pair identity of cdist's values is a property of its CPU kernel (tested);
    # GPU kernels reduce by blocks whose layout may depend on the shapes.
    if features.device.type != "cpu" or features.dtype not in (torch.float32, torch.float64):
        return None
    if prototypes.dtype != features.dtype:
        return None
    p64, p_sq = norms.get(prototypes)
    mask = candidate_mask(features, p64, p_sq, topk)
    if mask is None:
        return None
    b, l, n = mask.nonzero(as_tuple=True)
    if b.numel() > MAX_CANDIDATE_FRACTION * mask.numel():
        return None
    exact = torch.cdist(features[b, l].unsqueeze(1), prototypes[n].unsqueeze(1), compute_mode=CDIST_MODE)
    out = torch.full(mask.shape, float("inf"), dtype=features.dtype, device=features.device)
    out[b, l, n] = exact[:, 0, 0]
    return out
