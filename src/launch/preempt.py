"""Pre-emption (SIGTERM from SLURM, a cloud scheduler or ``kill``): stop at the next batch, exit 143.

Lightning notes SIGTERM but, on one process, acts on it only at the end of the epoch, which can be
longer than a scheduler's grace period. :class:`StopOnSigterm` stops after the current training
batch instead. No checkpoint is written mid-epoch: the last end-of-epoch ``last.ckpt`` is what
RESUME continues from, which keeps the resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

#: Exit status after SIGTERM (128 + 15), as a shell reports a process killed by it.
SIGTERM_EXIT = 143


class StopOnSigterm(L.Callback):
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.received_sigterm:
            raise SIGTERMException


def stopped_message(run_dir: object) -> str:
    return f"stopped by SIGTERM; checkpoints are kept in {run_dir}. Continue with: make train RESUME={run_dir}"
