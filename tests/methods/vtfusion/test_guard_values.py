"""VTFusion's guards by value: the floating-point bound of the screened nearest-prototype search and
the errors of a model used before it has prototypes or text."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from src.methods.vtfusion.nearest import summation_bound
from src.methods.vtfusion.torch_model import VTFusionModel


@pytest.mark.parametrize(("terms", "dtype", "eps"), [(1000, torch.float32, 2.0**-23), (64, torch.float64, 2.0**-52)])
def test_summation_bound_is_gamma_n(terms: int, dtype: torch.dtype, eps: float) -> None:
    u = eps / 2  # unit roundoff; gamma_n = n u / (1 - n u) (Higham, Accuracy and Stability, Lemma 3.1)
    assert summation_bound(terms, dtype) == pytest.approx(terms * u / (1 - terms * u), rel=1e-12)
    assert summation_bound(terms, dtype) > terms * u


@pytest.mark.parametrize(("prepared", "message"), [
    ((False, True), r"^VTFusion has no prototypes: they are computed from the k shots at the start of `fit` "
                    r"\(or restored from a checkpoint\); run fit first or load a trained checkpoint$"),
    ((False, False), r"^VTFusion has no prototypes"),
    ((True, False), r"^VTFusion has no text embeddings: call set_text\(object_name\) or load a checkpoint$"),
])
def test_a_model_without_prototypes_or_text_is_refused_by_name(prepared: tuple[bool, bool], message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        VTFusionModel.check_prepared(SimpleNamespace(prepared=torch.tensor(prepared)))
    VTFusionModel.check_prepared(SimpleNamespace(prepared=torch.tensor((True, True))))


def test_prototype_shapes_and_topk_are_refused_by_name() -> None:
    from src.methods.vtfusion.aie import prototype_distances, prototypes_from_features

    with pytest.raises(ValueError, match=r"^prototype features must be \(k >= 1, L, C\), got \(0, 4, 3\)$"):
        prototypes_from_features(torch.zeros(0, 4, 3))
    with pytest.raises(ValueError, match=r"^vision_topk/hinge_topk=3 must be in 1\.\.2 \(the number of prototypes\)$"):
        prototype_distances(torch.zeros(1, 5, 4), torch.zeros(2, 4), topk=3)
    assert prototype_distances(torch.zeros(1, 5, 4), torch.zeros(2, 4), topk=2).shape == (1, 5, 2)
