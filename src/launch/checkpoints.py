"""A checkpoint is checked before Lightning loads it: readable, a Lightning checkpoint, this method's.

Without this, a truncated ``last.ckpt`` fails deep in torch's unpickler ("please file an issue")
and another method's checkpoint gets through ``strict_loading=False`` until an optimizer error.
Everything is loaded with ``weights_only=True``: a checkpoint never runs pickled code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from src.launch.errors import LaunchError


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on CPU, or a :class:`LaunchError` naming the file."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        reason = " ".join(str(err).split())[:200]
        raise LaunchError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {reason}); the file is truncated, "
            f"damaged or not a torch checkpoint. Delete it to restart that run's training from epoch 0, "
            f"or start a new run"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise LaunchError(f"{path} is not a Lightning checkpoint (no 'state_dict'); delete it or start a new run")
    return ckpt


def check_checkpoint(path: str | Path, method: str) -> dict[str, Any]:
    """Readable and written by ``method`` (its ``frozen_backbone.method`` entry); returns it."""
    ckpt = read_checkpoint(path)
    saved = (ckpt.get("frozen_backbone") or {}).get("method")
    if saved is not None and saved != method:
        raise LaunchError(
            f"{path} is a checkpoint of method '{saved}', not of '{method}'; use a run directory of "
            f"method '{method}' or start a new run"
        )
    return ckpt


def check_state_keys(owner: str, expected: set[str], checkpoint: dict[str, Any]) -> None:
    """Every trainable parameter of the model is in the checkpoint, or a clear error."""
    missing = sorted(expected - set(checkpoint.get("state_dict", {})))
    if missing:
        method = (checkpoint.get("frozen_backbone") or {}).get("method", "unknown")
        raise LaunchError(
            f"the checkpoint (method '{method}') lacks {len(missing)} trainable parameter(s) of {owner}, "
            f"e.g. {missing[:3]}; it was written by another method or configuration"
        )
