"""Two-way scoring of a query feature against the normal and abnormal prototypes (Eqs. 7-14).

With CMFR the query is the rectified *text* ``R_i`` (text-on-text scoring); without it, the
visual token itself (plain image-text scoring, the paper's baseline row). Either way:

    S_n,i = cos(q_i, F_t^n),  S_a,i = cos(q_i, F_t^a),  P_i = softmax([S_n,i, S_a,i] / tau)

The paper's Eqs. 9 and 13 use tau = 1 (a softmax of raw cosines); the default 0.07 is the
temperature its lineage's code divides by (README A9, a declared DEVIATION).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prototype_logits(query: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """Cosine logits against the two prototypes, channel 0 normal, channel 1 abnormal.

    Args:
        query: (B, N, D) features to score.
        normal: (B, D) normal prototype of each image.
        abnormal: (B, D) abnormal prototype of each image.
        temperature: divides the cosines before the softmax.

    Returns:
        (B, N, 2) logits ``[S_n, S_a] / temperature``.
    """
    q = F.normalize(query, dim=-1)
    protos = F.normalize(torch.stack([normal, abnormal], dim=1), dim=-1)  # (B, 2, D)
    return torch.einsum("bnd,bkd->bnk", q, protos) / temperature
