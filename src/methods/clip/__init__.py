"""Training-free CLIP baseline (``METHOD=clip``): the "Base" row of the ablation tables."""

from .lightning_model import CLIPBaseline
from .torch_model import CLIPBaselineModel, stage_layers

__all__ = ["CLIPBaseline", "CLIPBaselineModel", "stage_layers"]
