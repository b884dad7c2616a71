"""Fault injection for the reliability tests: a real kill or a NaN at a chosen training step.

Test machinery, not part of the suite: the launcher adds it to a run only when
``ADSUITE_CALLBACKS=tests.faults.FaultInjection`` (``CALLBACKS``) is set, and it acts only when
one of these is set too:

* ``ADSUITE_FAULT_KILL_AT_STEP=N``: the training process SIGKILLs itself when global step N
  starts (what a pre-empted GPU job looks like: no cleanup, no final checkpoint).
* ``ADSUITE_FAULT_TERM_AT_STEP=N``: the process sends itself SIGTERM when global step N starts
  (how SLURM and cloud pre-emption stop a job: Lightning stops after that batch).
* ``ADSUITE_FAULT_NAN_AT_STEP=N``: the first trainable parameter becomes NaN before step N, so
  the loss of that step is non-finite and the loss guard must stop the run.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning as L
import torch

KILL_ENV = "ADSUITE_FAULT_KILL_AT_STEP"
NAN_ENV = "ADSUITE_FAULT_NAN_AT_STEP"
TERM_ENV = "ADSUITE_FAULT_TERM_AT_STEP"
#: The environment that puts this callback into a ``make train`` run (with one of the above).
CALLBACKS = {"ADSUITE_CALLBACKS": "tests.faults.FaultInjection"}


class FaultInjection(L.Callback):
    """Kill or stop the process, or poison a parameter, at a given global step."""

    def __init__(self, kill_at_step: int | None = None, nan_at_step: int | None = None,
                 term_at_step: int | None = None) -> None:
        self.kill_at_step = kill_at_step
        self.nan_at_step = nan_at_step
        self.term_at_step = term_at_step

    @classmethod
    def from_env(cls) -> FaultInjection | None:
        kill, nan, term = (os.environ.get(k) for k in (KILL_ENV, NAN_ENV, TERM_ENV))
        if kill is None and nan is None and term is None:
            return None
        return cls(*(int(v) if v is not None else None for v in (kill, nan, term)))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.kill_at_step is not None and step == self.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.term_at_step is not None and step == self.term_at_step:
            os.kill(os.getpid(), signal.SIGTERM)
        if self.nan_at_step is not None and step == self.nan_at_step:
            param = next(p for p in pl_module.parameters() if p.requires_grad)
            with torch.no_grad():
                param.fill_(float("nan"))
