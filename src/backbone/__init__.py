"""The frozen CLIP backbone shared by every method."""

from .clip import CLIPBackbone, TextOutput, available_models, quick_gelu_required, register_suite_configs
from .weights import WeightsUnavailableError, resolve_checkpoint

__all__ = [
    "CLIPBackbone",
    "TextOutput",
    "WeightsUnavailableError",
    "available_models",
    "quick_gelu_required",
    "register_suite_configs",
    "resolve_checkpoint",
]
