"""A tiny VTFusion with fixed, deliberately non-trivial weights for the value-pinned tests.

At initialisation several parts are identities or zeros (CoordConv adaptor, ATE's second layer,
the attention scale γ, BatchNorm statistics), and a slip inside an identity is invisible. Here
every such part gets seeded random values, so each term of the computation shows in the output.
"""

from __future__ import annotations

import numpy as np
import torch

from src.contracts import Batch
from src.methods.vtfusion import VTFusion
from tests.batches import make_batch

from . import reference as ref
from .helpers import textured_image, tiny_kwargs, to_tensor

SIZE = 32
GRID = (4, 4)
#: Value-test settings that differ from the paper's. On this tiny random model nearest distances
#: are 3-7, so r = 2 and alpha = 0.075 ((r + alpha)^2 = 4.31) leave each of the NFC and AFS hinges
#: active at some locations and inactive at others (with r = 1e-5, alpha = 0.1 NFC is the plain mean
#: distance and AFS is 0: slips in either could not show). A softmax temperature of 5 keeps
#: P(abnormal) away from 0 and 1.
VALUE_KWARGS = dict(fusion_dim=16, logit_scale=5.0, r=2.0, alpha=0.075)


class StubDataModule:
    """What ``prepare_category`` reads from the real AnomalyDataModule."""

    def __init__(self, shots: torch.Tensor, category: str = "metal_nut") -> None:
        self.categories = [category]
        self.paths = [f"/data/{category}/train/good/{i:03d}.png" for i in range(len(shots))]
        self.shots = shots

    def reference_batch(self, category: str) -> Batch:
        return make_batch(self.shots, path=self.paths, category=[category] * len(self.shots))


def images(k: int, seed: int) -> torch.Tensor:
    """(k, 3, S, S) CLIP-normalised textures, seeds ``seed .. seed + k - 1``."""
    return torch.stack([to_tensor(textured_image(SIZE, seed + i)) for i in range(k)])


def perturb(model: torch.nn.Module, seed: int = 1) -> None:
    """Seeded non-trivial values for every identity/zero-initialised part (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)

    def randn(t: torch.Tensor, scale: float) -> torch.Tensor:
        return scale * torch.randn(t.shape, generator=g)

    def uniform(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(t.shape, generator=g)

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("linears.", "adaptors.", "text_adapter.fc2")):
                p.add_(randn(p, 0.05))
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(uniform(m.weight, 0.5, 1.5))
                m.bias.copy_(randn(m.bias, 0.1))
                m.running_mean.copy_(randn(m.running_mean, 0.1))
                m.running_var.copy_(uniform(m.running_var, 0.5, 2.0))
            elif name in ("fusion.sam_v", "fusion.sam_t"):
                m.gamma.fill_(0.8 if name.endswith("v") else -0.6)
                m.query.weight.mul_(3.0)  # sharper, clearly non-uniform attention
                m.key.weight.mul_(3.0)


def fixed_module(k: int = 2, **overrides) -> tuple[VTFusion, StubDataModule]:
    """The tiny model (tiny-vit, 32 px, 4 x 4 grid, taps 1-4), perturbed, prepared on ``k`` shots."""
    torch.manual_seed(0)
    module = VTFusion(**tiny_kwargs(**{**VALUE_KWARGS, **overrides}))
    perturb(module.model)
    dm = StubDataModule(images(k, seed=0))
    module.prepare_category(dm)
    module.eval()
    return module, dm


#: (top, bottom, left, right) of each synthetic item's foreign patch. Not aligned with the 8-px
#: cells: the cells it covers hold 1/8 to 1 of it, some exactly 1/2, so the >= 0.5 cell rule matters.
BOXES = ((4, 20, 2, 18), (14, 30, 12, 28))


def anomaly_batch() -> Batch:
    """Two clean images (not the shots) and synthetic versions carrying a foreign 16 x 16 patch.

    Built by hand rather than by DAS so that the loss tests do not move when a DAS recipe changes.
    """
    foreign = textured_image(SIZE, 99)
    clean, synthetic, masks = [], [], []
    for i, (top, bottom, left, right) in enumerate(BOXES):
        image = textured_image(SIZE, 10 + i)
        edited, mask = image.copy(), np.zeros((1, SIZE, SIZE), np.float32)
        edited[top:bottom, left:right] = foreign[top:bottom, left:right]
        mask[0, top:bottom, left:right] = 1.0
        clean.append(to_tensor(image))
        synthetic.append(to_tensor(edited))
        masks.append(torch.from_numpy(mask))
    return make_batch(torch.stack(clean), synthetic_image=torch.stack(synthetic), synthetic_mask=torch.stack(masks))


def taps64(module: VTFusion, x: torch.Tensor) -> list[torch.Tensor]:
    """The frozen backbone's taps (the input of the re-derivation), as float64."""
    model = module.model
    return [t.double() for t in model.backbone.encode_image_layers(x, model.layers)]


def reference_features(module: VTFusion, x: torch.Tensor, adaptor: bool = True) -> list[torch.Tensor]:
    """Per-stage ``F_l^v`` of ``x`` from the re-derivation (float64)."""
    sd = ref.state64(module.model)
    eps = module.model.backbone.visual.ln_post.eps
    return ref.stage_features(taps64(module, x), sd, GRID, eps, adaptor)
