"""VTFusion: few-shot anomaly detection by vision-text fusion (DAS, AIE, ATE, MPF).

Spec: ``shared/specs/vtfusion.md``; the README section in this folder lists every RESOLUTION and
DEVIATION.
"""

from .das import DAS_TYPES, DASHook, synthesize
from .lightning_model import VTFusion
from .torch_model import VTFusionModel

__all__ = ["DAS_TYPES", "DASHook", "VTFusion", "VTFusionModel", "synthesize"]
