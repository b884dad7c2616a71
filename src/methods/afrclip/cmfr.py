"""CMFR: cross-modal feature rectification (AFR-CLIP Eqs. 3-6, README A6/A7).

For every visual token ``F_v,i`` and the stateless text feature ``F_t^s`` of its image:

    F_i = [F_v,i ; F_t^s]                                  (2D)
    M   = Linear(sigmoid(conv(ReLU(conv(F_i)))))           (2D) -> split into M_v, M_t
    R_i = F_t^s + F_v,i * M_v,i                             (D)  the rectified text (Eq. 6)

The convolutions are pointwise over the token axis (1x1), written as ``nn.Linear`` on the channel
dimension: same function, same parameter count, no transposes. The CLS token is processed like a
patch. ``M_t`` is produced (the paper's Eq. 5) but Eq. 6 never uses it, so its half of the last
Linear gets no gradient; it is kept so the module and its parameter count match the paper.

The ``scalar`` gate is the CMX ``SpatialWeights`` form the module is named after: the second conv
maps to 2 channels and the Linear is 2 -> 2, giving one weight per token and modality.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GATES = ("vector", "scalar")


class CMFR(nn.Module):
    """Rectify the stateless text feature with each visual token.

    Args:
        dim: joint feature width D.
        hidden: width of the first pointwise conv (default D, CMX reduction 1).
        gate: ``vector`` (M_v in R^D per token, Eq. 5's stated shape) or ``scalar`` (CMX form).
    """

    def __init__(self, dim: int, hidden: int | None = None, gate: str = "vector") -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"cmfr_gate must be one of {GATES}, got {gate!r}")
        hidden = hidden or dim
        out = 2 * dim if gate == "vector" else 2
        self.dim = dim
        self.gate = gate
        self.conv1 = nn.Linear(2 * dim, hidden)
        self.conv2 = nn.Linear(hidden, out)
        self.linear = nn.Linear(out, out)

    def weights(self, visual: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two weight maps of Eq. 5.

        Args:
            visual: (B, N, D) visual tokens.
            text: (B, D) stateless text feature of each image.

        Returns:
            ``(M_v, M_t)``, each (B, N, D) for the vector gate or (B, N, 1) for the scalar gate.
        """
        fused = torch.cat([visual, text[:, None].expand_as(visual)], dim=-1)
        gates = self.linear(torch.sigmoid(self.conv2(torch.relu(self.conv1(fused)))))
        m_v, m_t = gates.chunk(2, dim=-1)
        return m_v, m_t

    def forward(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Rectified text per token, ``R_i = F_t^s + F_v,i * M_v,i`` (Eq. 6).

        Args:
            visual: (B, N, D) visual tokens (L2-normalised by the caller, README A7).
            text: (B, D) stateless text feature (L2-normalised by the caller).

        Returns:
            (B, N, D) rectified text features.
        """
        if torch.is_inference_mode_enabled():
            return torch.addcmul(text[:, None], visual, self.visual_weights(visual, text))
        # Training keeps the concatenated form: the split one sums in another order, and float
        # rounding compounded over training steps would move trained results by ~1e-6.
        m_v, _ = self.weights(visual, text)
        return text[:, None] + visual * m_v

    def visual_weights(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``M_v`` alone, equal to ``weights(visual, text)[0]`` up to float rounding.

        Why not :meth:`weights`: the first conv splits as ``W_v F_v,i + (W_t F_t^s + b)``, whose text
        half is one vector per image rather than one per token, and the ``M_t`` half of the last
        Linear is never used; together that is 37% of CMFR's FLOPs (19 of 52 GFLOPs per 518 px
        image at ViT-L width) and the (B, N, 2D) concatenation.
        """
        d, half = self.dim, self.linear.out_features // 2
        w1 = self.conv1.weight
        hidden = F.linear(visual, w1[:, :d])
        hidden += F.linear(text, w1[:, d:], self.conv1.bias)[:, None]
        gates = torch.sigmoid(self.conv2(hidden.relu_()))
        return F.linear(gates, self.linear.weight[:half], self.linear.bias[:half])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, gate={self.gate!r}"
