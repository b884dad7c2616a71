"""The typed records of src/contracts.py: Lightning's device transfer, the documented field list."""

from __future__ import annotations

import re
from pathlib import Path

import lightning as L
import torch

from src.contracts import Batch, EvaluationOutput
from tests.batches import make_batch

REPO = Path(__file__).resolve().parents[1]


def _tensor_fields(record: object) -> dict[str, torch.Tensor]:
    return {k: v for k, v in vars(record).items() if isinstance(v, torch.Tensor)}


def test_lightning_moves_every_tensor_field_of_a_batch():
    """``transfer_batch_to_device`` (what the Trainer calls) rebuilds the dataclass field by field.

    The meta device stands in for an accelerator: every tensor has to go through ``.to``.
    """
    image = torch.randn(2, 3, 8, 8)
    batch = make_batch(image, category=["a", "b"], synthetic_image=image + 1, synthetic_mask=torch.ones(2, 1, 8, 8))
    moved = L.LightningModule().transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert isinstance(moved, Batch) and moved is not batch
    tensors = _tensor_fields(moved)
    assert set(tensors) == set(Batch.field_names()) - {"category", "defect_type", "path"}
    assert all(t.device.type == "meta" for t in tensors.values())
    assert moved.category == ["a", "b"] and moved.path == batch.path
    assert all(t.device.type == "cpu" for t in _tensor_fields(batch).values())  # the original is untouched

    output = EvaluationOutput(anomaly_map=torch.zeros(2, 8, 8), pred_score=torch.zeros(2), batch=batch)
    moved = L.LightningModule().transfer_batch_to_device(output, torch.device("meta"), 0)
    assert moved.anomaly_map.device.type == moved.batch.image.device.type == "meta"


def test_the_documented_batch_fields_are_the_dataclass_fields():
    text = (REPO / "docs/architecture.md").read_text()
    table = text[text.index("- batch fields"): text.index("- method outputs")]
    documented = re.findall(r"^  \| `(\w+)` \|", table, flags=re.MULTILINE)
    assert tuple(documented) == Batch.field_names()
