"""AFR-CLIP: adaptive feature rectification for zero-shot anomaly detection (``METHOD=afr``)."""

from .lightning_model import AFRCLIP
from .torch_model import AFRCLIPModel, AFROutput

__all__ = ["AFRCLIP", "AFRCLIPModel", "AFROutput"]
