"""A tiny AnomalyModule and data for callback and DDP tests: deterministic, no backbone weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from datamodules.loaders import collate_batch
from src.contracts import Batch, MethodOutput
from src.module import AnomalyModule

SIZE = 16
CATEGORIES = ("alpha", "beta")


class TinySet(Dataset):
    """``n`` samples in the suite's batch format; every third is anomalous with a square defect."""

    def __init__(self, n: int = 13, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, SIZE, SIZE, generator=gen)
        self.masks = torch.zeros(n, 1, SIZE, SIZE)
        self.labels = torch.tensor([int(i % 3 == 1) for i in range(n)])
        for i in range(n):
            if self.labels[i]:
                y, x = (3 * i) % 10, (5 * i) % 10
                self.masks[i, :, y:y + 5, x:x + 5] = 1.0
                self.images[i, :, y:y + 5, x:x + 5] += 2.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        label = int(self.labels[i])
        return {"image": self.images[i], "mask": self.masks[i], "label": self.labels[i],
                "category": CATEGORIES[i % 2], "defect_type": "square" if label else "good",
                "path": f"/tiny/{i}.png", "index": torch.tensor(i), "has_mask": True}


def loader(n: int = 13, batch_size: int = 4) -> DataLoader:
    return DataLoader(TinySet(n), batch_size=batch_size, shuffle=False, collate_fn=collate_batch)


class TinyModel(nn.Module):
    """A frozen 'backbone' conv and a trainable 1x1 head: map = head(features), score = map max."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.frozen = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            for p in (*self.frozen.parameters(), *self.head.parameters()):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.frozen.requires_grad_(False)

    def forward(self, images: torch.Tensor, categories: Sequence[str]) -> MethodOutput:
        logits = self.head(torch.tanh(self.frozen(images)))[:, 0]
        return MethodOutput(anomaly_map=logits, pred_score=logits.flatten(1).amax(1))


class TinyModule(AnomalyModule):
    """:class:`TinyModel` trained with a per-pixel BCE."""

    method_name = "tiny"

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__(eval_sigma=1.0)
        self.model = TinyModel()
        self.lr = lr

    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        logits = self(batch).anomaly_map
        return {"bce": nn.functional.binary_cross_entropy_with_logits(logits, batch.mask[:, 0])}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=self.lr)
