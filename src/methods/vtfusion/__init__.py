"""VTFusion: few-shot anomaly detection by vision-text fusion (DAS, AIE, ATE, MPF).

The README in this folder lists every resolution of what the paper leaves open, and every
deviation from it.
"""

from .das import DAS_TYPES, DASHook, synthesize
from .lightning_model import VTFusion
from .torch_model import VTFusionModel

__all__ = ["DAS_TYPES", "DASHook", "VTFusion", "VTFusionModel", "synthesize"]
