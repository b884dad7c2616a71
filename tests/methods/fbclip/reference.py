"""An independent float64 re-derivation of FB-CLIP's forward pass (tests only).

Written from the description of the released computation, not from ``src/methods/fbclip``: it
reads the model's *weights* and nothing else (open_clip's own blocks run the frozen transformer).
Every step is spelled out with explicit loops or dense matrices so that a slip in the optimised
code under test (shifted views, fused attention kernels) cannot hide in shared code.

Shapes: ``B`` images, ``L = g * g`` patches, ``C`` vision width, ``D`` joint width.
"""

from __future__ import annotations

import copy

import open_clip
import torch

D64 = torch.float64


def _w(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(D64).clone() for k, v in module.state_dict().items()}


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * weight + bias


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine over the last dim; 0 for a zero vector (torch's convention, eps 1e-8 per norm)."""
    na = a.norm(dim=-1).clamp_min(1e-8)
    nb = b.norm(dim=-1).clamp_min(1e-8)
    return (a * b).sum(-1) / (na * nb)


def minmax(v: torch.Tensor) -> torch.Tensor:
    lo, hi = v.min(dim=1, keepdim=True).values, v.max(dim=1, keepdim=True).values
    return (v - lo) / torch.clamp(hi - lo, min=1e-6)


# ---------------------------------------------------------------------------- backbone
def vision_taps(backbone, images: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    """Block outputs (1-based) with the position table resized bilinearly (no antialias) per call."""
    vis = copy.deepcopy(backbone.visual).to(D64)
    x = torch.nn.functional.conv2d(images.to(D64), vis.conv1.weight, stride=vis.conv1.stride)
    B, C, gh, gw = x.shape
    x = x.reshape(B, C, gh * gw).transpose(1, 2)
    table = vis.positional_embedding.detach()
    old = int(round((table.shape[0] - 1) ** 0.5))
    grid = table[1:].reshape(1, old, old, C).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
    pos = torch.cat([table[:1], grid.permute(0, 2, 3, 1).reshape(gh * gw, C)])
    x = torch.cat([vis.class_embedding.detach().expand(B, 1, C), x], dim=1) + pos
    x = vis.ln_pre(x)
    taps = {}
    with torch.no_grad():
        for i, block in enumerate(vis.transformer.resblocks, start=1):
            x = block(x)
            taps[i] = x.clone()
    return [taps[i] for i in layers]


# ---------------------------------------------------------------------------- text
def text_features(model, model_name: str) -> dict[str, torch.Tensor]:
    """MSTFF: (2, D) unit text features, row 0 the normal prompt; plus the three parts."""
    bb = model.backbone
    n_ctx = model.prompt.ctx_normal.shape[0]
    prefix = " ".join(["X"] * n_ctx)
    ids = open_clip.get_tokenizer(model_name)([f"{prefix} object without defect.", f"{prefix} object with defect."])
    emb = bb.token_embedding.weight.detach().to(D64)[ids]
    emb[0, 1:1 + n_ctx] = model.prompt.ctx_normal.detach().to(D64)
    emb[1, 1:1 + n_ctx] = model.prompt.ctx_abnormal.detach().to(D64)
    x = emb + bb.text_positional_embedding.detach().to(D64)
    blocks = copy.deepcopy(bb.text_transformer.resblocks).to(D64)
    with torch.no_grad():
        for block in blocks:
            x = block(x, attn_mask=None)  # the release builds the text transformer without a mask
    ln = _w(bb.ln_final)
    H = layer_norm(x, ln["weight"], ln["bias"])
    W_t = bb.text_projection.detach().to(D64)
    eot = ids.argmax(-1)
    f_eot = H[torch.arange(2), eot] @ W_t
    f_gp = H.mean(1) @ W_t
    s = _w(model.text_fusion.selector)
    logit = torch.relu(H @ s["0.weight"].T + s["0.bias"]) @ s["2.weight"].T + s["2.bias"]
    a = torch.softmax(logit, dim=1)
    h = (a * H).sum(1)
    m = _w(model.text_fusion.mlp)
    f_att = torch.relu(h @ m["0.weight"].T + m["0.bias"]) @ m["2.weight"].T + m["2.bias"]
    fused = 1.0 * f_gp + 0.5 * f_att + 0.5 * f_eot
    return {"text": fused / fused.norm(dim=-1, keepdim=True), "eot": f_eot, "gp": f_gp, "attn": f_att, "ids": ids}


# ---------------------------------------------------------------------------- MVFBE
def foreground(tokens: torch.Tensor, prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Smoothed combined score A (B, L) and soft mask p (B, L) of one layer."""
    cls, x = tokens[:, 0], tokens[:, 1:]
    B, L, C = x.shape
    zero = torch.zeros(B, 1, C, dtype=D64)
    padded = torch.cat([zero, x, zero], dim=1)
    local = (padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]) / 3
    S = (x - local).norm(dim=-1)
    Dd = (x - x.mean(1, keepdim=True)).norm(dim=-1)
    I = 1 - cos(x, cls.unsqueeze(1))  # noqa: E741
    T = torch.zeros(B, L, dtype=D64) if prev is None else (x - prev[:, 1:]).norm(dim=-1)
    A = 0.3 * minmax(S) + 0.3 * minmax(Dd) + 0.3 * minmax(I) + 0.1 * minmax(T)
    # 5-tap box filter, reflect padding that does not repeat the edge sample.
    ext = torch.cat([A[:, 2:3], A[:, 1:2], A, A[:, -2:-1], A[:, -3:-2]], dim=1)
    smooth = sum(ext[:, k:k + L] for k in range(5)) / 5
    p = torch.where(smooth > 0.5, torch.tensor(1.0, dtype=D64), torch.tensor(0.5, dtype=D64))
    return smooth, p


def sem_view(tokens: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    cls, x = tokens[:, :1], tokens[:, 1:]
    c = cos(x, cls)
    r = 1 - c
    Fm = torch.softmax(r[:, :, None] * p[:, :, None] * p[:, None, :], dim=-1)
    G = torch.softmax(c[:, :, None] * (1 - p)[:, :, None] * (1 - p)[:, None, :], dim=-1)
    y = 0.6 * (p[..., None] * (Fm @ x) + (1 - p)[..., None] * (G @ x)) + 0.4 * x
    return torch.cat([cls, y], dim=1)


def spa_view(tokens: torch.Tensor, p: torch.Tensor, g: int) -> torch.Tensor:
    cls, x = tokens[:, 0], tokens[:, 1:]
    B, L, C = x.shape
    out = torch.zeros_like(x)
    for b in range(B):
        for i in range(g):
            for j in range(g):
                xs, ps = [], []
                for di in range(-2, 3):
                    for dj in range(-2, 3):
                        ii, jj = i + di, j + dj
                        inside = 0 <= ii < g and 0 <= jj < g
                        xs.append(x[b, ii * g + jj] if inside else torch.zeros(C, dtype=D64))
                        ps.append(p[b, ii * g + jj] if inside else torch.tensor(0.0, dtype=D64))
                xk, pk = torch.stack(xs), torch.stack(ps)[:, None]
                bk, ak = (1 - pk) * xk, pk * xk
                sigma = cos(bk, cls[b]) * bk.norm(dim=-1)
                rho = (1 - cos(ak, cls[b])) * (ak - ak.mean(0)).norm(dim=-1)
                bg = (torch.softmax(sigma, 0)[:, None] * bk).sum(0) / torch.clamp((1 - pk).sum(), min=1e-8)
                fg = (torch.softmax(rho, 0)[:, None] * ak).sum(0) / torch.clamp(pk.sum(), min=1e-8)
                out[b, i * g + j] = fg + bg
    return torch.cat([cls[:, None], out], dim=1)


# ---------------------------------------------------------------------------- FB-Attention
def fb_attention(fb, y: torch.Tensor, heads: int) -> torch.Tensor:
    w = _w(fb)
    gate = torch.sigmoid(torch.relu(y @ w["gate.0.weight"].T + w["gate.0.bias"]) @ w["gate.2.weight"].T
                         + w["gate.2.bias"])

    def branch(u: torch.Tensor, name: str) -> torch.Tensor:
        h = layer_norm(u, w[f"{name}.norm.weight"], w[f"{name}.norm.bias"])
        B, N, _ = h.shape
        q, k, v = (
            (h @ w[f"{name}.to_{t}.weight"].T).reshape(B, N, heads, -1).permute(0, 2, 1, 3) for t in "qkv"
        )
        attn = torch.softmax((q @ k.transpose(-1, -2)) * w[f"{name}.scale"], dim=-1)  # rows: queries
        o = (attn @ v).permute(0, 2, 1, 3).reshape(B, N, -1)
        return o @ w[f"{name}.to_out.weight"].T + w[f"{name}.to_out.bias"]

    z = branch(gate * y, "fg") + branch((1 - gate) * y, "bg")
    return layer_norm(z, w["norm.weight"], w["norm.bias"])


# ---------------------------------------------------------------------------- whole pass
def forward(model, model_name: str, images: torch.Tensor, layers: list[int]) -> dict:
    """Everything the released forward pass computes, in float64."""
    g = model.backbone.grid_size[0]
    heads = model.fb_attention.fg.heads
    taps = vision_taps(model.backbone, images, layers)
    text = text_features(model, model_name)
    views, refined, masks, scores = [], [], [], []
    prev = None
    for tokens in taps:
        score, p = foreground(tokens, prev)
        prev = tokens
        masks.append(p)
        scores.append(score)
        for y in (tokens, sem_view(tokens, p), spa_view(tokens, p, g)):
            views.append(y)
            refined.append(fb_attention(model.fb_attention, y, heads))
    half = refined[0].shape[1] // 2
    bank = torch.cat([z[:, :half] for z in refined], dim=1)
    proto = 0.5 * bank.mean(1) + 0.5 * bank.max(1).values
    subtracted = []
    for z in refined:
        s = cos(z, proto[:, None])[..., None]
        subtracted.append(0.5 * z + 0.5 * (1 - s) * (z - proto[:, None]))
    proj = model.backbone.visual.proj.detach().to(D64)
    projected = [z @ proj for z in subtracted]
    omega = torch.softmax(model.layer_weights.detach().to(D64), dim=0)
    logits = 0
    for k, v in enumerate(projected):
        vn = v / v.norm(dim=-1, keepdim=True)
        logits = logits + omega[k // 3] * (vn @ text["text"].T) / 0.07
    probs = torch.softmax(logits, dim=-1)
    return {
        "taps": taps, "text": text, "views": views, "refined": refined, "masks": masks, "scores": scores,
        "prototype": proto, "subtracted": subtracted, "projected": projected, "logits": logits, "probs": probs,
        "pred_score": probs[:, 0, 1], "anomaly_map": probs[:, 1:, 1].reshape(-1, g, g),
    }


def focal(p: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """Binary focal on probabilities, logs clamped at -100 as PyTorch's BCE does."""
    p, y = p.to(D64), y.to(D64)
    bce = -(y * torch.clamp(torch.log(p), min=-100) + (1 - y) * torch.clamp(torch.log(1 - p), min=-100))
    pt = p * y + (1 - p) * (1 - y)
    return (bce * (1 - pt) ** gamma).mean()


def dice(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    m, g = m.to(D64).flatten(1), g.to(D64).flatten(1)
    return 1 - ((2 * (m * g).sum(1) + 1) / (m.sum(1) + g.sum(1) + 1)).mean()


def scr(last_set: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    v = last_set.to(D64).mean(1)
    v = v / v.norm(dim=-1, keepdim=True)
    t = text.to(D64)
    s = v @ (t / t.norm(dim=-1, keepdim=True)).T / 0.07
    pi = torch.softmax(s, dim=-1)
    ent = (-(pi * torch.log(pi + 1e-8)).sum(-1)).mean()
    margin = torch.clamp(1.0 - (s[:, 1] - s[:, 0]).abs(), min=0).mean()
    return 0.15 * (1.0 * ent + 0.5 * margin)
