"""Linear-probe baseline: APRIL-GAN's per-tap linear adapters on the frozen backbone (``METHOD=linear``)."""

from .lightning_model import LinearProbe
from .torch_model import LinearOutput, LinearProbeModel

__all__ = ["LinearOutput", "LinearProbe", "LinearProbeModel"]
