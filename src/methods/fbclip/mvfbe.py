"""MVFBE: the soft foreground mask and the three views (ID, SEM, SPA) of one layer's tokens.

All of it runs on frozen backbone tokens, so nothing here carries a gradient: the model calls it
under ``torch.no_grad``. Token layout: (B, 1 + L, C) with CLS first and the L = gh * gw patch
tokens in row-major raster order; masks and indicators are (B, L) over the patches only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

VIEWS = ("id", "sem", "spa")
#: Weights of the indicators (saliency, centre distance, CLS inconsistency, temporal change).
INDICATOR_WEIGHTS = (0.3, 0.3, 0.3, 0.1)


def check_views(views: Sequence[str]) -> tuple[str, ...]:
    """Validate a subset of views; returned in the release's order (ID, SEM, SPA)."""
    chosen = {v.lower() for v in views}
    if not chosen or not chosen <= set(VIEWS) or len(chosen) != len(views):
        raise ValueError(f"views={list(views)} must be a non-empty subset of {list(VIEWS)} without repeats")
    return tuple(v for v in VIEWS if v in chosen)


def minmax(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-image min-max normalisation of (B, L): ``(v - min) / max(max - min, eps)``."""
    lo = x.amin(dim=1, keepdim=True)
    hi = x.amax(dim=1, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(eps)


def indicators(tokens: torch.Tensor, prev_tokens: torch.Tensor | None = None) -> torch.Tensor:
    """The four raw foreground indicators of every patch token.

    Args:
        tokens: (B, 1 + L, C) one layer's tokens, CLS first.
        prev_tokens: (B, 1 + L, C) tokens of the previous *selected* layer, or ``None`` for the
            first one (its temporal term is then 0).

    Returns:
        (4, B, L): local saliency S, centre distance D, CLS inconsistency I, temporal change T.
    """
    cls, x = tokens[:, :1], tokens[:, 1:]
    # 3-tap mean along the raster sequence (wrapping over row ends), zero pad counted in the mean.
    local_mean = F.avg_pool1d(x.transpose(1, 2), kernel_size=3, stride=1, padding=1).transpose(1, 2)
    saliency = (x - local_mean).norm(dim=-1)
    centre = (x - x.mean(dim=1, keepdim=True)).norm(dim=-1)
    inconsistency = 1 - F.cosine_similarity(x, cls, dim=-1)
    if prev_tokens is None:
        temporal = torch.zeros_like(centre)
    else:
        temporal = (x - prev_tokens[:, 1:]).norm(dim=-1)
    return torch.stack([saliency, centre, inconsistency, temporal])


def foreground_score(
    tokens: torch.Tensor,
    prev_tokens: torch.Tensor | None = None,
    weights: Sequence[float] = INDICATOR_WEIGHTS,
    smooth: bool = True,
) -> torch.Tensor:
    """Combined, smoothed foreground score A of every patch token. (B, L).

    ``A = sum_k w_k minmax(indicator_k)`` then a 5-tap moving average along the raster sequence
    with torch's ``reflect`` padding (edge sample not repeated), as the release does.
    """
    if len(weights) != 4:
        raise ValueError(f"indicator_weights needs 4 values (S, D, I, T), got {list(weights)}")
    parts = indicators(tokens, prev_tokens)
    score = sum(w * minmax(p) for w, p in zip(weights, parts))
    if smooth:
        kernel = torch.full((1, 1, 5), 1 / 5, dtype=score.dtype, device=score.device)
        score = F.conv1d(F.pad(score.unsqueeze(1), (2, 2), mode="reflect"), kernel).squeeze(1)
    return score


def soft_mask(score: torch.Tensor, values: Sequence[float] = (0.5, 1.0), threshold: float = 0.5) -> torch.Tensor:
    """p = ``values[1]`` where ``score > threshold`` else ``values[0]``. (B, L) -> (B, L)."""
    low, high = values
    return torch.where(score > threshold, torch.full_like(score, high), torch.full_like(score, low))


def semantic_view(tokens: torch.Tensor, p: torch.Tensor, alpha: float = 0.6) -> torch.Tensor:
    """SEM view: global fg/bg aggregation with per-row temperatures. (B, 1 + L, C) -> same.

    With ``c_i = cos(x_i, x_cls)`` and ``r_i = 1 - c_i``:
    ``F_ij = softmax_j(r_i p_i p_j)``, ``G_ij = softmax_j(c_i (1 - p_i)(1 - p_j))``,
    ``y_i = alpha (p_i sum_j F_ij x_j + (1 - p_i) sum_j G_ij x_j) + (1 - alpha) x_i``; CLS unchanged.

    The logits are rank-one (a per-row factor times a per-column value), so each aggregate is a
    one-dimensional-key attention: ``scaled_dot_product_attention`` with q = r p, k = p (head
    dimension 1, scale 1) computes exactly the dense softmax-matmul without holding the
    L x L matrices where a fused kernel is available.
    """
    cls, x = tokens[:, :1], tokens[:, 1:]
    c = F.cosine_similarity(x, cls, dim=-1)
    r = 1 - c
    q_fg, k_fg = (r * p).unsqueeze(-1), p.unsqueeze(-1)
    q_bg, k_bg = (c * (1 - p)).unsqueeze(-1), (1 - p).unsqueeze(-1)
    fg = F.scaled_dot_product_attention(q_fg.unsqueeze(1), k_fg.unsqueeze(1), x.unsqueeze(1), scale=1.0)
    bg = F.scaled_dot_product_attention(q_bg.unsqueeze(1), k_bg.unsqueeze(1), x.unsqueeze(1), scale=1.0)
    p_ = p.unsqueeze(-1)
    mixed = p_ * fg.squeeze(1) + (1 - p_) * bg.squeeze(1)
    return torch.cat([cls, alpha * mixed + (1 - alpha) * x], dim=1)


def spatial_view(tokens: torch.Tensor, p: torch.Tensor, grid: tuple[int, int], window: int = 5) -> torch.Tensor:
    """SPA view: 5x5 local fg/bg aggregation with soft-count normalisation. (B, 1 + L, C) -> same.

    Every position takes its ``window x window`` neighbourhood (stride 1, zero padding; padded
    slots have x = 0 and p = 0, so they count as background). With ``b_k = (1 - p_k) x_k`` and
    ``a_k = p_k x_k``:
    ``sigma_k = cos(b_k, x_cls) ||b_k||``, ``rho_k = (1 - cos(a_k, x_cls)) ||a_k - mean_k a_k||``,
    ``y = sum_k softmax(rho)_k a_k / max(sum_k p_k, 1e-8) + sum_k softmax(sigma)_k b_k / max(sum_k (1 - p_k), 1e-8)``
    (no residual); CLS unchanged.
    """
    cls, x = tokens[:, :1], tokens[:, 1:]
    B, L, C = x.shape
    gh, gw = grid
    if gh * gw != L:
        raise ValueError(f"SPA view: {L} patch tokens do not form the {gh}x{gw} grid")
    K, pad = window * window, window // 2
    # The window is walked as K shifted views of one zero-padded grid instead of an unfolded
    # (B, C, K, L) tensor: same arithmetic, no K-fold copy of the tokens, and every product runs
    # on contiguous memory (the unfolded einsums degenerated into L tiny strided matmuls).
    offsets = [(dy, dx) for dy in range(window) for dx in range(window)]

    def padded(v: torch.Tensor) -> torch.Tensor:
        """(B, L, c) -> (B, gh + 2 pad, gw + 2 pad, c), zeros outside the grid."""
        return F.pad(v.reshape(B, gh, gw, -1), (0, 0, pad, pad, pad, pad))

    def shifted(v: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        return v[:, dy:dy + gh, dx:dx + gw]

    # Per-token scalars: cos(b_k, cls) ||b_k|| = (1 - p_k) (x_k . cls / ||cls||), and
    # cos(a_k, cls) = cos(x_k, cls) when p_k > 0 (0 for a pad or a zero-weight token, whose a_k is 0).
    cls_dir = F.normalize(cls, dim=-1)
    along_cls = (x * cls_dir).sum(-1, keepdim=True)
    cos_cls = F.cosine_similarity(x, cls, dim=-1).unsqueeze(-1) * (p.unsqueeze(-1) > 0)
    scalars = padded(torch.cat([p.unsqueeze(-1), along_cls, cos_cls], dim=-1))
    x_pad = padded(x)
    p_win = torch.stack([shifted(scalars[..., 0], dy, dx) for dy, dx in offsets], 1)  # (B, K, gh, gw)
    along_win = torch.stack([shifted(scalars[..., 1], dy, dx) for dy, dx in offsets], 1)
    cos_win = torch.stack([shifted(scalars[..., 2], dy, dx) for dy, dx in offsets], 1)

    fg_mean = sum(shifted(x_pad, dy, dx) * p_win[:, k, ..., None] for k, (dy, dx) in enumerate(offsets)) / K
    spread = torch.stack([
        (shifted(x_pad, dy, dx) * p_win[:, k, ..., None] - fg_mean).norm(dim=-1) for k, (dy, dx) in enumerate(offsets)
    ], 1)
    stability = (1 - p_win) * along_win
    richness = (1 - cos_win) * spread

    w_fg = torch.softmax(richness, dim=1) * p_win / p_win.sum(1, keepdim=True).clamp_min(1e-8)
    w_bg = torch.softmax(stability, dim=1) * (1 - p_win) / (1 - p_win).sum(1, keepdim=True).clamp_min(1e-8)
    w = w_fg + w_bg
    out = sum(shifted(x_pad, dy, dx) * w[:, k, ..., None] for k, (dy, dx) in enumerate(offsets))
    out = out.reshape(B, L, C)
    return torch.cat([cls, out], dim=1)


def build_views(
    tokens: torch.Tensor,
    p: torch.Tensor | None,
    views: Sequence[str],
    grid: tuple[int, int],
    sem_alpha: float = 0.6,
) -> list[torch.Tensor]:
    """The requested views of one layer, in the given order: list of (B, 1 + L, C)."""
    out = []
    for view in views:
        if view == "id":
            out.append(tokens)
        elif view == "sem":
            out.append(semantic_view(tokens, p, sem_alpha))
        elif view == "spa":
            out.append(spatial_view(tokens, p, grid))
        else:
            raise ValueError(f"unknown view {view!r}; valid: {list(VIEWS)}")
    return out
