"""Messages a user cannot act on are silenced at their source, for ``make train`` only.

* Lightning's "Found N module(s) in eval mode": the frozen CLIP/CNN backbones are in eval mode on
  purpose (no dropout, frozen batch-norm statistics).
* Lightning's pytree deprecation: raised inside Lightning against this torch version.
* Lightning's advert for litlogger.
* "The number of training batches is smaller than the logging interval": instead of hiding it,
  :class:`LogIntervalCap` caps the interval at the epoch length, so a short epoch still logs.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


def quiet_libraries() -> None:
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            handler.addFilter(_DropAdverts())
        logger.addFilter(_DropAdverts())


class LogIntervalCap(L.Callback):
    """``log_every_n_steps`` at most the number of training batches per epoch (at least 1)."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader: Any = trainer.datamodule.train_dataloader() if trainer.datamodule is not None else None
        if loader is None:
            return
        batches = len(loader)
        limit = trainer.limit_train_batches
        if isinstance(limit, int):
            batches = min(batches, limit)
        elif limit is not None:
            batches = int(batches * limit)
        if 0 < batches < trainer.log_every_n_steps:
            trainer.log_every_n_steps = batches
