"""Background subtraction (BS): a background prototype from a token bank, subtracted by similarity.

Bank: from each token set (B, 1 + L, C) the release takes the first ``floor((1 + L) / 2)`` rows *by
index* (CLS plus the upper half of the image in raster order) and concatenates them over all
sets. ``bank="full"`` keeps every row (supplement Table 3's "L"), ``candidates="score"`` is the
paper's reading: per set CLS plus the patches with the lowest foreground score A (the MVFBE score
of that set's layer).

Prototype ``b = 0.5 mean_rows(bank) + 0.5 max_rows(bank)``; every token becomes
``z' = 0.5 z + 0.5 (1 - cos(z, b)) (z - b)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

BANKS = ("half", "full")
CANDIDATES = ("index", "score")


def bank_rows(num_tokens: int, bank: str = "half") -> int:
    """Rows contributed per set: ``floor(num_tokens / 2)`` (``half``) or ``num_tokens`` (``full``)."""
    if bank not in BANKS:
        raise ValueError(f"bg_bank={bank!r} is not known; valid: {list(BANKS)}")
    return num_tokens // 2 if bank == "half" else num_tokens


def background_bank(
    token_sets: Sequence[torch.Tensor],
    bank: str = "half",
    scores: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Concatenate the background candidates of every set. -> (B, S * rows, C).

    Args:
        token_sets: S tensors (B, 1 + L, C), CLS first.
        bank: ``half`` or ``full``.
        scores: optional, one (B, L) foreground score per set: then the candidates are CLS and the
            ``rows - 1`` lowest-scoring patches (ties by index), instead of the first rows.
    """
    parts = []
    for i, tokens in enumerate(token_sets):
        rows = bank_rows(tokens.shape[1], bank)
        if scores is None:
            parts.append(tokens[:, :rows])
        else:
            order = torch.sort(scores[i], dim=1, stable=True).indices[:, : rows - 1] + 1
            index = torch.cat([torch.zeros_like(order[:, :1]), order], dim=1)
            parts.append(tokens.gather(1, index.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])))
    return torch.cat(parts, dim=1)


def background_prototype(bank: torch.Tensor) -> torch.Tensor:
    """(B, R, C) -> (B, C): half the row mean plus half the channel-wise row max."""
    return 0.5 * bank.mean(dim=1) + 0.5 * bank.amax(dim=1)


def subtract_background(tokens: torch.Tensor, prototype: torch.Tensor) -> torch.Tensor:
    """``0.5 z + 0.5 (1 - cos(z, b)) (z - b)`` for (B, N, C) tokens and a (B, C) prototype."""
    b = prototype.unsqueeze(1)
    similarity = F.cosine_similarity(tokens, b.expand_as(tokens), dim=-1).unsqueeze(-1)
    return 0.5 * tokens + 0.5 * (1 - similarity) * (tokens - b)
