"""FB-CLIP (``METHOD=fb``): foreground-background decoupled CLIP for zero-shot anomaly detection."""

from .lightning_model import FBCLIP
from .torch_model import FBCLIPModel, FBOutput

__all__ = ["FBCLIP", "FBCLIPModel", "FBOutput"]
