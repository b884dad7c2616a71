"""The Lightning wiring every method shares.

A method's ``lightning_model.py`` subclasses :class:`AnomalyModule` and provides

* ``self.model``: its pure ``torch_model`` (an ``nn.Module`` holding a frozen
  :class:`~src.backbone.CLIPBackbone` as ``model.backbone``) with the one forward signature
  ``model(images (B, 3, S, S), categories) -> MethodOutput`` (raw ``anomaly_map`` (B, h, w) at any
  resolution and ``pred_score`` (B,); post-processing happens here, identically for every method);
* ``training_losses(batch: Batch) -> dict[str, Tensor]``: the weighted loss terms, summed here
  (training-free methods do not override it);
* ``configure_optimizers`` where it trains.

``validation_step`` / ``test_step`` return an :class:`~src.contracts.EvaluationOutput` (the
post-processed map, the score and the batch) to the callbacks. Checkpoints hold the trainable
parameters only: the frozen backbone is named in ``hyper_parameters`` and rebuilt.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from src.contracts import Batch, EvaluationOutput, MethodOutput
from src.postprocess import PostProcessor


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class AnomalyModule(L.LightningModule):
    """Base class: evaluation step, shared post-processing, loss guard, slim checkpoints.

    Args:
        eval_sigma: Gaussian sigma of the shared map smoothing (0 disables it).
        image_score_from_map: replace the model's image score by the maximum of the smoothed map.
    """

    #: Short method name used in run names, results and W&B tags (``clip``, ``afr``, ...).
    method_name = "base"
    #: True for methods that train one model per category (the launcher then loops over categories).
    per_category = False

    def __init__(self, eval_sigma: float = 4.0, image_score_from_map: bool = False) -> None:
        super().__init__()
        self.postprocess = PostProcessor(sigma=eval_sigma)
        self.image_score_from_map = image_score_from_map
        # Checkpoints omit the frozen backbone; loading must not demand it back.
        self.strict_loading = False

    # ------------------------------------------------------------------ evaluation
    def forward(self, batch: Batch) -> MethodOutput:
        """The torch model's raw output for ``batch`` (images and their categories)."""
        return self.model(batch.image, batch.category)

    def evaluation_step(self, batch: Batch) -> EvaluationOutput:
        """Post-process the model's output for ``batch`` (shared by validation and test)."""
        out = self(batch)
        anomaly_map = self.postprocess(out.anomaly_map.float(), tuple(batch.mask.shape[-2:]))
        score = anomaly_map.flatten(1).amax(1) if self.image_score_from_map else out.pred_score.float()
        return EvaluationOutput(anomaly_map=anomaly_map, pred_score=score, batch=batch)

    def validation_step(self, batch: Batch, batch_idx: int) -> EvaluationOutput:
        """One validation batch: see :meth:`evaluation_step`."""
        return self.evaluation_step(batch)

    def test_step(self, batch: Batch, batch_idx: int) -> EvaluationOutput:
        """One test batch: see :meth:`evaluation_step`."""
        return self.evaluation_step(batch)

    # ------------------------------------------------------------------ training
    def training_losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The weighted loss terms of one batch; training-free methods do not override it."""
        raise TypeError(f"{type(self).__name__} is training-free: run `test`, not `fit`.")

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """Sum the loss terms, refuse a non-finite loss, log every term."""
        terms = self.training_losses(batch)
        loss = torch.stack([t.float() for t in terms.values()]).sum()
        values = {name: float(t.detach()) for name, t in terms.items()}
        if not math.isfinite(float(loss.detach())):
            detail = ", ".join(f"{name}={value:.6g}" for name, value in values.items())
            raise NonFiniteLossError(
                f"Non-finite loss at global step {self.global_step} (epoch {self.current_epoch}, "
                f"batch {batch_idx}): loss={float(loss.detach())} from terms {detail}. Training stopped; "
                "the last checkpoint in the run directory is intact."
            )
        batch_size = batch.size
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v for k, v in values.items()}, batch_size=batch_size)
        return loss

    @property
    def is_trainable(self) -> bool:
        """True when any parameter requires a gradient."""
        return any(p.requires_grad for p in self.parameters())

    def trainable_parameter_count(self) -> int:
        """Number of trainable parameter values."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ------------------------------------------------------------------ results and checkpoints
    def results_meta(self) -> dict[str, Any]:
        """What ``metrics.json`` records about the model."""
        meta: dict[str, Any] = {"method": self.method_name}
        meta["trainable_params"] = self.trainable_parameter_count()
        backbone = getattr(getattr(self, "model", None), "backbone", None)
        if backbone is not None:
            meta.update(backbone.describe())
        return meta

    def _frozen_keys(self, state_dict: dict[str, torch.Tensor]) -> list[str]:
        frozen = {name for name, p in self.named_parameters() if not p.requires_grad}
        frozen |= {name for name, _ in self.named_buffers() if ".backbone." in f".{name}"}
        return [k for k in state_dict if k in frozen]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the frozen backbone from the checkpoint and record what it was."""
        state = checkpoint["state_dict"]
        for key in self._frozen_keys(state):
            del state[key]
        checkpoint["frozen_backbone"] = self.results_meta()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check the trainable keys and put back the frozen ones this model rebuilt."""
        from src.launch.checkpoints import check_state_keys

        # strict_loading is off for the omitted backbone; a checkpoint without this model's trainable
        # weights (another method's) must still fail here, by name, not at the optimizer.
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        check_state_keys(type(self).__name__, trainable, checkpoint)
        own = self.state_dict()
        missing = [k for k in self._frozen_keys(own) if k not in checkpoint["state_dict"]]
        for key in missing:
            checkpoint["state_dict"][key] = own[key]
