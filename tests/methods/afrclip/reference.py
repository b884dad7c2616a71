"""An independent float64 re-derivation of AFR-CLIP's forward pass and loss, for value-pinned tests.

Written from the paper (arXiv 2503.12910, Eqs. 1-21) and the resolutions in the method's README,
with plain torch float64 operations. It reads only the *weights* of the model under test (the
frozen ViT, the SP linears and ``P_l``, the stage and text adapters, CMFR) and the frozen inputs
(the CLIP text features of literal prompt strings, a torchvision CNN); it never calls the
method's own modules. Shapes: B images, L = gh * gw patches, C ViT width, D joint width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# CLIP's normalisation (what the batch carries) and ImageNet's (what torchvision CNNs expect).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The three prompts of an object, in the order the paper names them: normal, abnormal, stateless.
TEMPLATES = ("a photo of a normal {}.", "a photo of a defective {}.", "a photo of a {}.")


def d(t: torch.Tensor) -> torch.Tensor:
    """A detached float64 copy."""
    return t.detach().to(torch.float64).clone()


def layer_norm(x: torch.Tensor, ln) -> torch.Tensor:
    """LayerNorm over the last axis, biased variance (as CLIP)."""
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * d(ln.weight) + d(ln.bias)


def vit_block(x: torch.Tensor, block, head_width: int) -> torch.Tensor:
    """One pre-norm CLIP block with QuickGELU: (B, N, C) -> (B, N, C)."""
    b, n, c = x.shape
    heads = c // head_width
    h = layer_norm(x, block.ln_1)
    q, k, v = (h @ d(block.attn.in_proj_weight).T + d(block.attn.in_proj_bias)).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, n, heads, head_width).transpose(1, 2) for t in (q, k, v))
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_width), dim=-1)
    h = (att @ v).transpose(1, 2).reshape(b, n, c)
    x = x + h @ d(block.attn.out_proj.weight).T + d(block.attn.out_proj.bias)
    h = layer_norm(x, block.ln_2) @ d(block.mlp.c_fc.weight).T + d(block.mlp.c_fc.bias)
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU (the OpenAI weights' activation)
    return x + h @ d(block.mlp.c_proj.weight).T + d(block.mlp.c_proj.bias)


def cnn_feature(net, images: torch.Tensor) -> torch.Tensor:
    """``F_cnn = [GAP(layer2); GAP(layer3)]`` of a torchvision ResNet on CLIP-normalised images.

    The images are first taken back to pixels with CLIP's statistics and re-normalised with
    ImageNet's. ``net`` is a float64 torchvision model in eval mode (its own layers, not the suite's).
    """
    mean_c, std_c = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (CLIP_MEAN, CLIP_STD))
    mean_i, std_i = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    x = (d(images) * std_c + mean_c - mean_i) / std_i
    with torch.no_grad():
        x = net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))
        f2 = net.layer2(x)
        f3 = net.layer3(f2)
    return torch.cat([f2.mean(dim=(2, 3)), f3.mean(dim=(2, 3))], dim=1)


def prompted_blocks(layers: list[int], stages: list[int]) -> list[int]:
    """Blocks that receive prompts: stage j spans blocks after tap j-1 up to tap j; never block 1."""
    bounds = [0, *layers]
    return sorted({b for s in stages for b in range(bounds[s - 1] + 1, bounds[s] + 1) if b >= 2})


def vit_taps(backbone, images: torch.Tensor, layers: list[int], prompts: torch.Tensor | None,
             blocks: list[int], insert: str) -> list[torch.Tensor]:
    """Tapped raw tokens (B, 1 + L, C) with the prompts (B, K, C) inserted before ``blocks``.

    ``append``: concatenated before the first prompted block, written over the last K tokens before
    the later ones, stripped from the taps. ``overwrite``: the last K tokens are replaced every time.
    """
    visual = backbone.visual
    patch = visual.conv1.kernel_size[0]
    x = F.conv2d(d(images), d(visual.conv1.weight), stride=patch)  # (B, C, gh, gw)
    x = x.flatten(2).transpose(1, 2)  # row-major patch order
    cls = d(visual.class_embedding).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + d(visual.positional_embedding)  # native size: stored table
    x = layer_norm(x, visual.ln_pre)
    keep = x.shape[1]
    head_width = visual.transformer.resblocks[0].attn.head_dim
    taps = {}
    for i in range(1, max(layers) + 1):
        if prompts is not None and i in blocks:
            k = prompts.shape[1]
            first = i == blocks[0]
            x = torch.cat([x if (first and insert == "append") else x[:, :-k], prompts], dim=1)
        x = vit_block(x, visual.transformer.resblocks[i - 1], head_width)
        if i in layers:
            taps[i] = x[:, :keep]
    return [taps[i] for i in layers]


def mpfa(tokens: torch.Tensor, grid: tuple[int, int], m: int) -> torch.Tensor:
    """Mean of each patch's in-bounds m x m neighbourhood (borders average real cells only); CLS kept."""
    gh, gw = grid
    cls, cells = tokens[:, :1], tokens[:, 1:].reshape(tokens.shape[0], gh, gw, -1)
    r = m // 2
    total = torch.zeros_like(cells)
    count = torch.zeros(gh, gw, 1, dtype=cells.dtype)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ys, yd = slice(max(dy, 0), gh + min(dy, 0)), slice(max(-dy, 0), gh + min(-dy, 0))
            xs, xd = slice(max(dx, 0), gw + min(dx, 0)), slice(max(-dx, 0), gw + min(-dx, 0))
            total[:, yd, xd] += cells[:, ys, xs]
            count[yd, xd] += 1
    return torch.cat([cls, (total / count).reshape(tokens.shape[0], gh * gw, -1)], dim=1)


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def text_features(backbone, text_adapter, categories: list[str], nouns: dict[str, str]) -> torch.Tensor:
    """(B, 3, D) adapted features of the literal prompts (normal, abnormal, stateless) per image."""
    rows = []
    for c in categories:
        frozen = d(backbone.encode_text([t.format(nouns[c]) for t in TEMPLATES]))
        rows.append(frozen @ d(text_adapter.weight).T + d(text_adapter.bias))
    return torch.stack(rows)


def cmfr(visual: torch.Tensor, text: torch.Tensor, mod) -> torch.Tensor:
    """Eqs. 3-6 (vector gate): R_i = F_t^s + F_v,i * M_v,i; visual (B, N, D), text (B, D)."""
    fused = torch.cat([visual, text[:, None].expand_as(visual)], dim=-1)
    h = torch.relu(fused @ d(mod.conv1.weight).T + d(mod.conv1.bias))
    g = torch.sigmoid(h @ d(mod.conv2.weight).T + d(mod.conv2.bias))
    gates = g @ d(mod.linear.weight).T + d(mod.linear.bias)
    m_v = gates[..., : visual.shape[-1]]  # the first half is M_v, the second M_t (unused by Eq. 6)
    return text[:, None] + visual * m_v


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos between (B, N, D) and (B, D) -> (B, N)."""
    return (unit(a) * unit(b)[:, None]).sum(-1)


def forward(model, images: torch.Tensor, categories: list[str], nouns: dict[str, str], cfg: dict,
            cnn=None) -> dict:
    """Reference stage logits (list of (B, 1 + L, 2)), pred_score (B,) and anomaly_map (B, gh, gw).

    ``cfg`` holds layers, sp_stages, sp_insert, sp_use_pv, sp_use_pl, use_sp, use_cmfr,
    mpfa_kernel, temperature and optionally cmfr_normalize (default true), cmfr_per_stage (false).
    ``cnn`` is the float64 torchvision net feeding P_v.
    """
    net, bb = model.model, model.model.backbone
    prompts = None
    if cfg["use_sp"] and (cfg["sp_use_pv"] or cfg["sp_use_pl"]):
        parts = []
        if cfg["sp_use_pv"]:
            f_cnn = cnn_feature(cnn, images)
            parts.append(torch.stack([f_cnn @ d(lin.weight).T + d(lin.bias) for lin in net.sp.pv], dim=1))
        if cfg["sp_use_pl"]:
            parts.append(d(net.sp.pl).expand(images.shape[0], -1, -1))
        prompts = sum(parts)  # Eq. 16: P~_v = P_v + P_l
    blocks = prompted_blocks(cfg["layers"], cfg["sp_stages"])
    taps = vit_taps(bb, images, cfg["layers"], prompts, blocks, cfg["sp_insert"])
    text = text_features(bb, net.text_adapter, categories, nouns)
    normalize = cfg.get("cmfr_normalize", True)  # unit-length features before CMFR (README resolution)
    normal, abnormal, stateless = text[:, 0], text[:, 1], text[:, 2]
    stateless = unit(stateless) if normalize else stateless
    stage_logits, probs = [], []
    for s, tap in enumerate(taps):  # adapter s belongs to tap s
        lin = net.stage_adapters.linears[s]
        v = mpfa(tap @ d(lin.weight).T + d(lin.bias), bb.grid_size, cfg["mpfa_kernel"])
        v = unit(v) if normalize else v
        mod = net.cmfr[s] if cfg.get("cmfr_per_stage", False) else net.cmfr[0] if cfg["use_cmfr"] else None
        query = cmfr(v, stateless, mod) if cfg["use_cmfr"] else v
        logits = torch.stack([cosine(query, normal), cosine(query, abnormal)], dim=-1) / cfg["temperature"]
        stage_logits.append(logits)
        probs.append(torch.softmax(logits, dim=-1)[..., 1])
    mean = torch.stack(probs).mean(0)  # the paper averages the four stages' outputs
    gh, gw = bb.grid_size
    return {"stage_logits": stage_logits, "pred_score": mean[:, 0], "anomaly_map": mean[:, 1:].reshape(-1, gh, gw)}


def loss_terms(stage_logits: list[torch.Tensor], grid: tuple[int, int], mask: torch.Tensor,
               label: torch.Tensor, gamma: float = 2.0, smooth: float = 1e-5) -> dict:
    """Per-stage loss terms in float64: CE on the CLS logits, focal, dice(abnormal, G), dice(normal, 1-G).

    Returns lists over stages; the total is mean(image_ce) + sum(focal + dice_abn + dice_nrm).
    """
    g = d(mask)[:, 0]
    out = {"image_ce": [], "focal": [], "dice_abnormal": [], "dice_normal": []}
    for lg in stage_logits:
        lg = d(lg)
        logp = torch.log_softmax(lg[:, 0], dim=-1)
        out["image_ce"].append(-logp[torch.arange(len(label)), label.long()].mean())
        b = lg.shape[0]
        q = torch.softmax(lg[:, 1:], dim=-1).transpose(1, 2).reshape(b, 2, *grid)
        q = F.interpolate(q, size=tuple(g.shape[-2:]), mode="bilinear", align_corners=False)
        target = torch.stack([1 - g, g], dim=1).clamp(smooth, 1 - smooth)  # smoothed one-hot
        pt = (target * q).sum(1) + smooth
        out["focal"].append((-(1 - pt) ** gamma * torch.log(pt)).mean())
        for name, p, t in (("dice_abnormal", q[:, 1], g), ("dice_normal", q[:, 0], 1 - g)):
            inter = (p * t).flatten(1).sum(1)
            score = (2 * inter + 1) / (p.flatten(1).sum(1) + t.flatten(1).sum(1) + 1)
            out[name].append(1 - score.mean())
    return out


def total_loss(terms: dict) -> torch.Tensor:
    """mean over stages of the image CE + sum over stages of the three pixel terms (all weights 1)."""
    pixel = sum(sum(terms[k]) for k in ("focal", "dice_abnormal", "dice_normal"))
    return torch.stack(terms["image_ce"]).mean() + pixel
