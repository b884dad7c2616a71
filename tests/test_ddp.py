"""Two CPU processes (gloo) give the metrics and gradients of one process.

* Evaluation of a fixed model: 13 samples (the DistributedSampler pads a shard), metrics on 2
  processes equal those on 1 to 1e-6.
* One training step with the same global batch (8 = 2 x 4): the averaged DDP gradients equal the
  single-process gradients.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from src.metrics.callback import MetricsCallback
from tests.logging.tiny import TinyModule, loader

pytestmark = pytest.mark.ddp


class GradientDump(L.Callback):
    """Saves rank 0's trainable gradients of the first step (after the DDP all-reduce)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
        if trainer.global_step == 0 and trainer.is_global_zero:
            torch.save({n: p.grad.clone() for n, p in pl_module.named_parameters() if p.requires_grad}, self.path)


class DestroyProcessGroup(L.Callback):
    """Closes gloo before a spawned worker exits.

    Lightning leaves the process group open; a worker that exits with gloo's threads still running
    aborts now and then ("terminate called without an active exception", SIGABRT: 1 run in 5 here).
    """

    def teardown(self, trainer, pl_module, stage) -> None:  # noqa: ANN001
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _trainer(devices: int, out: Path, callbacks: list, **kwargs) -> L.Trainer:
    callbacks = [*callbacks, DestroyProcessGroup()] if devices > 1 else callbacks
    return L.Trainer(accelerator="cpu", devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
                     logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                     default_root_dir=str(out), callbacks=callbacks, **kwargs)


def test_two_processes_match_one(tmp_path) -> None:
    metrics = {}
    for devices in (1, 2):
        out = tmp_path / f"eval{devices}"
        callback = MetricsCallback(num_bins=4096, output_dir=str(out))
        _trainer(devices, out, [callback]).test(TinyModule(), dataloaders=loader(13, 3), verbose=False)
        metrics[devices] = json.loads((out / "metrics.json").read_text())
    one, two = metrics[1], metrics[2]
    assert one["categories"].keys() == two["categories"].keys()
    for name in [*one["categories"], "mean"]:
        a = one["mean"] if name == "mean" else one["categories"][name]
        b = two["mean"] if name == "mean" else two["categories"][name]
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-6), (name, key)

    grads = {}
    for devices in (1, 2):
        out = tmp_path / f"fit{devices}"
        dump = out / "grads.pt"
        out.mkdir()
        _trainer(devices, out, [GradientDump(str(dump))], max_steps=1).fit(
            TinyModule(), train_dataloaders=loader(8, 8 // devices))
        grads[devices] = torch.load(dump, weights_only=True)
    assert grads[1].keys() == grads[2].keys() == {"model.head.weight", "model.head.bias"}
    for name, grad in grads[1].items():
        assert grad.abs().sum() > 0
        torch.testing.assert_close(grads[2][name], grad, atol=1e-6, rtol=1e-5)
