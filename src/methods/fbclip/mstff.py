"""MSTFF: multi-strategy text feature fusion (EOT, global pooling, attention pooling).

From the text transformer's token features ``H`` (2, T, W) after ``ln_final``:

* ``eot``:  ``H[EOT] @ W_t`` (CLIP's usual text embedding);
* ``gp``:   ``mean_T(H) @ W_t``, over *all* T positions, padding included (as released);
* ``attn``: ``MLP(sum_i softmax_i(S(H_i)) H_i)`` with a selector ``S`` (W -> W/2 -> 1) and a
  two-layer MLP (W -> W -> D) instead of ``W_t``.

They are fused with the release's *fixed* weights ``1.0 gp + 0.5 attn + 0.5 eot`` (its learnable
fusion parameters are never used) and L2-normalised. Any non-empty subset of the strategies can be
kept (supplement Table 1); the kept ones keep their weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Fixed fusion weights of the release (``enhanced_text_encoding``).
FUSION_WEIGHTS = {"gp": 1.0, "attn": 0.5, "eot": 0.5}
STRATEGIES = tuple(FUSION_WEIGHTS)


def check_strategies(strategies: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(s.lower() for s in strategies)
    bad = [s for s in chosen if s not in FUSION_WEIGHTS]
    if not chosen or bad or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"text_strategies={list(strategies)} must be a non-empty subset of {list(STRATEGIES)} "
            "without repeats"
        )
    return chosen


class TextFusion(nn.Module):
    """Selector, text MLP and the fixed fusion of the kept strategies.

    Args:
        text_width: W, width of the text tokens.
        embed_dim: D, width of the joint space.
        strategies: subset of ``("eot", "gp", "attn")``.
    """

    def __init__(self, text_width: int, embed_dim: int, strategies: Sequence[str] = STRATEGIES) -> None:
        super().__init__()
        self.strategies = check_strategies(strategies)
        # Built even when "attn" is off so that parameter names and counts stay those of the release.
        self.selector = nn.Sequential(
            nn.Linear(text_width, text_width // 2), nn.ReLU(), nn.Linear(text_width // 2, 1)
        )
        self.mlp = nn.Sequential(nn.Linear(text_width, text_width), nn.ReLU(), nn.Linear(text_width, embed_dim))
        if "attn" not in self.strategies:
            for p in self.parameters():
                p.requires_grad_(False)

    def attention_pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T, W) -> (N, W): softmax-weighted sum over all T positions (no padding mask)."""
        weights = torch.softmax(self.selector(tokens), dim=1)
        return (weights * tokens).sum(dim=1)

    def forward(
        self, tokens: torch.Tensor, eot: torch.Tensor, project: nn.Module | None = None
    ) -> torch.Tensor:
        """Fuse the text features.

        Args:
            tokens: (N, T, W) token features after ``ln_final``.
            eot: (N, D) projected EOT features.
            project: callable (..., W) -> (..., D), the frozen text projection ``W_t``.

        Returns:
            (N, D) unit-norm text features T.
        """
        parts = {}
        if "eot" in self.strategies:
            parts["eot"] = eot
        if "gp" in self.strategies:
            parts["gp"] = project(tokens.mean(dim=1))
        if "attn" in self.strategies:
            parts["attn"] = self.mlp(self.attention_pool(tokens))
        # Summed in the release's order (gp, attn, eot) so rounding matches.
        fused = sum(FUSION_WEIGHTS[name] * parts[name] for name in STRATEGIES if name in parts)
        return F.normalize(fused, dim=-1)
