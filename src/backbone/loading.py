"""Building the open_clip model behind :class:`~src.backbone.clip.CLIPBackbone` and loading its weights.

The suite's test configs are registered with open_clip, the activation follows the requested
weights (OpenAI's need QuickGELU), and weights are loaded here rather than by open_clip so that a
TorchScript archive and a plain state dict go through one path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import open_clip
import torch
from torch import nn

from .weights import openai_weights

CONFIG_DIR = Path(__file__).parent / "configs"
_REGISTERED = False


def register_suite_configs() -> None:
    """Make the suite's tiny test configs (``configs/*.json``) known to open_clip."""
    global _REGISTERED
    if not _REGISTERED:
        open_clip.add_model_config(CONFIG_DIR)
        _REGISTERED = True


def available_models() -> list[str]:
    """Every architecture name open_clip knows, the suite's test configs included."""
    register_suite_configs()
    return open_clip.list_models()


def quick_gelu_required(model_name: str, pretrained: str) -> bool:
    """True when the weights are OpenAI's, which were trained with QuickGELU.

    open_clip's plain names (``ViT-L-14-336``) build ``nn.GELU`` and only warn when given the
    ``openai`` tag, which silently gives wrong features; the ``-quickgelu`` configs are right. A
    checkpoint path is judged by :func:`~src.backbone.weights.openai_weights` (TorchScript archive
    or OpenAI-only architecture: QuickGELU; ambiguous plain state dict: refused).
    """
    return openai_weights(model_name, pretrained)


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``value`` as an (h, w) pair of ints (open_clip stores sizes as an int or a pair)."""
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def load_weights(model: nn.Module, path: str) -> None:
    """Load an open_clip state dict or an OpenAI JIT archive into ``model``."""
    try:
        open_clip.load_checkpoint(model, path)
        return
    except (RuntimeError, ValueError, TypeError, AttributeError) as first_error:
        try:
            state = torch.jit.load(path, map_location="cpu").state_dict()
        except Exception:  # noqa: BLE001 - report the original, more useful error
            raise RuntimeError(f"Could not load CLIP weights from {path}: {first_error}") from first_error
    # Metadata of OpenAI's archive, and the causal mask a scripted open_clip model saves: not weights.
    for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):
        state.pop(key, None)
    model.load_state_dict(state, strict=True)


class _DropWeightNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def without_open_clip_weight_notice() -> Iterator[None]:
    """open_clip logs "No pretrained weights loaded" because weights are loaded here, after it; the
    notice is wrong with real weights and a duplicate of the random-init banner without them."""
    notice = _DropWeightNotice()
    root = logging.getLogger()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)
