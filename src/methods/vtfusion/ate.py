"""ATE: adaptive text-feature extraction and the text-guided map M^t (Eq. 6).

The frozen text encoder embeds a prompt ensemble once per category; a residual MLP (zero-
initialised second layer, so the identity at start) adapts the two state embeddings to the
category's domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# APRIL-GAN's state phrases and 35 templates (RESOLUTION B15); "normal {}" is an option (``add_normal_state``).
from src.april_gan_prompts import ABNORMAL_STATES, NORMAL_STATES, TEMPLATES

PROMPT_SETS = ("ensemble", "pair")



def build_prompts(
    name: str, prompt_set: str = "ensemble", add_normal_state: bool = False
) -> tuple[list[str], list[str]]:
    """Normal and abnormal sentences for the object noun ``name``.

    ``ensemble``: APRIL-GAN's states x templates (7 x 35 and 5 x 35); ``pair``: the paper's two
    example sentences, "a photo of a normal {}." and "a photo of a damaged {}.".
    """
    if prompt_set == "pair":
        return [f"a photo of a normal {name}."], [f"a photo of a damaged {name}."]
    if prompt_set != "ensemble":
        raise ValueError(f"prompt_set must be one of {list(PROMPT_SETS)}, got {prompt_set!r}")
    normal_states = NORMAL_STATES + (("normal {}",) if add_normal_state else ())
    normal = [t.format(s.format(name)) for s in normal_states for t in TEMPLATES]
    abnormal = [t.format(s.format(name)) for s in ABNORMAL_STATES for t in TEMPLATES]
    return normal, abnormal


def ensemble_embedding(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean of L2-normalised prompt embeddings, renormalised. (N, D) -> (D,)."""
    return F.normalize(F.normalize(embeddings, dim=-1).mean(dim=0), dim=-1)


class TextAdapter(nn.Module):
    """Residual MLP ``t + W₂ ReLU(W₁ t)``, W₂ zero-initialised, then L2 normalisation.

    Args:
        dim: joint embedding width D.
        enabled: ``False`` (ablation ``use_ate=False``) keeps the frozen ensemble embeddings.
    """

    def __init__(self, dim: int, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        if enabled:
            self.fc1 = nn.Linear(dim, dim)
            self.fc2 = nn.Linear(dim, dim)
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """(2, D) frozen state embeddings [normal, abnormal] -> (2, D) unit-norm ``F^t``."""
        if self.enabled:
            text = text + self.fc2(F.relu(self.fc1(text)))
        return F.normalize(text, dim=-1)


def text_guided_map(
    stage_features: Sequence[torch.Tensor], text: torch.Tensor, logit_scale: float = 100.0
) -> torch.Tensor:
    """Eq. 6: ``M^t = Σ_l softmax(scale · n(F_l^v) F^tᵀ)[abnormal]``.

    Args:
        stage_features: per stage (B, D, h, w) image features (the adaptor outputs, RESOLUTION B6).
        text: (2, D) unit-norm text features, row 0 normal, row 1 abnormal.
        logit_scale: CLIP's temperature (100, as APRIL-GAN).

    Returns:
        (B, 1, h, w), values in [0, number of stages].
    """
    total = None
    for feats in stage_features:
        logits = logit_scale * torch.einsum("bdhw,kd->bkhw", F.normalize(feats, dim=1), text.to(feats.dtype))
        abnormal = logits.softmax(dim=1)[:, 1:2]
        total = abnormal if total is None else total + abnormal
    return total
