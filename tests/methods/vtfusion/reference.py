"""An independent float64 re-derivation of VTFusion's computation, written from the method's
description (not from the code under test), used by the value-pinned tests.

Every function takes plain float64 tensors: the frozen backbone's taps (the input) and the
model's weights read from its ``state_dict`` (``sd``, keys without the ``model.`` prefix). Only
torch primitives (conv, bilinear resize, adaptive average pool, softmax) are used; no module of
``src.methods.vtfusion`` is imported here.

Shapes: ``B`` images, ``(h, w)`` token grid, ``L = h·w``, ``C`` vision width, ``D`` joint width,
``n`` stages, ``S`` input side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def state64(module: torch.nn.Module) -> dict[str, Tensor]:
    """The weights of ``module`` as detached float64 tensors (bool/int buffers unchanged)."""
    return {k: v.detach().double() if v.is_floating_point() else v.detach() for k, v in module.state_dict().items()}


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """LayerNorm over the last axis with the biased variance."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def avg3x3_valid(x: Tensor) -> Tensor:
    """3 x 3 stride-1 mean over the neighbours that exist (zero pads not counted). (B, D, h, w)."""
    _, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    ones = F.pad(torch.ones(1, 1, h, w, dtype=x.dtype), (1, 1, 1, 1))
    total, count = torch.zeros_like(x), torch.zeros(1, 1, h, w, dtype=x.dtype)
    for dy in range(3):
        for dx in range(3):
            total = total + padded[:, :, dy:dy + h, dx:dx + w]
            count = count + ones[:, :, dy:dy + h, dx:dx + w]
    return total / count


def stage_features(taps: list[Tensor], sd: dict[str, Tensor], grid: tuple[int, int], ln_eps: float,
                   adaptor: bool = True) -> list[Tensor]:
    """Per stage ``F_l^v``: taps (B, 1 + L, C) -> ln_post -> linear l -> 3x3 valid mean -> CoordConv l. (B, D, h, w)."""
    h, w = grid
    out = []
    for i, tokens in enumerate(taps):
        x = layer_norm(tokens[:, 1:], sd["backbone.visual.ln_post.weight"], sd["backbone.visual.ln_post.bias"], ln_eps)
        x = x @ sd[f"linears.{i}.linear.weight"].T + sd[f"linears.{i}.linear.bias"]  # (B, L, D)
        x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
        if adaptor:
            x = avg3x3_valid(x)
            # CoordConv: channel D is x (left -1 .. right +1), channel D + 1 is y (top -1 .. bottom +1)
            xs = torch.linspace(-1, 1, w, dtype=x.dtype).view(1, 1, 1, w).expand(x.shape[0], 1, h, w)
            ys = torch.linspace(-1, 1, h, dtype=x.dtype).view(1, 1, h, 1).expand(x.shape[0], 1, h, w)
            x = torch.cat([x, xs, ys], 1)
            weight = sd[f"adaptors.{i}.conv.weight"][:, :, 0, 0]
            x = torch.einsum("oc,bchw->bohw", weight, x) + sd[f"adaptors.{i}.conv.bias"].view(1, -1, 1, 1)
        out.append(x)
    return out


def stacked(features: list[Tensor]) -> Tensor:
    """``F^v`` (B, L, n·D): stage 1's channels first, locations in row-major order."""
    b = features[0].shape[0]
    return torch.cat([f.reshape(b, f.shape[1], -1).transpose(1, 2) for f in features], dim=2)


def all_distances(features: Tensor, prototypes: Tensor) -> Tensor:
    """Euclidean distance of every location to every prototype from direct differences. (B, L, N)."""
    diff = features[:, :, None, :] - prototypes[None, None, :, :]
    return torch.sqrt((diff**2).sum(-1))


def nearest(features: Tensor, prototypes: Tensor) -> Tensor:
    """``d*`` (B, L): distance to the nearest prototype."""
    return all_distances(features, prototypes).min(-1).values


def text_features(embeddings: Tensor, sd: dict[str, Tensor], adapter: bool = True) -> Tensor:
    """``F^t`` (2, D): ``t + W2 relu(W1 t + b1) + b2``, unit norm; row 0 normal, row 1 abnormal."""
    t = embeddings
    if adapter:
        hidden = torch.relu(t @ sd["text_adapter.fc1.weight"].T + sd["text_adapter.fc1.bias"])
        t = t + hidden @ sd["text_adapter.fc2.weight"].T + sd["text_adapter.fc2.bias"]
    return t / t.norm(dim=-1, keepdim=True)


def text_map(features: list[Tensor], text: Tensor, scale: float) -> Tensor:
    """``M^t`` (B, 1, h, w) = sum over stages of P(abnormal) of the 2-way softmax of scaled cosines."""
    total = 0.0
    for f in features:
        unit = f / f.norm(dim=1, keepdim=True)
        logits = scale * torch.einsum("bdhw,kd->bkhw", unit, text)
        # two-class softmax written out: P(abnormal) = 1 / (1 + exp(l_normal - l_abnormal))
        total = total + torch.sigmoid(logits[:, 1:2] - logits[:, 0:1])
    return total


def batch_norm_eval(x: Tensor, sd: dict[str, Tensor], key: str, eps: float = 1e-5) -> Tensor:
    shape = (1, -1, 1, 1)
    mean, var = sd[f"{key}.running_mean"].view(shape), sd[f"{key}.running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + eps) * sd[f"{key}.weight"].view(shape) + sd[f"{key}.bias"].view(shape)


def conv(x: Tensor, sd: dict[str, Tensor], key: str) -> Tensor:
    """Same-size convolution with the stored weight (odd kernel, zero padding)."""
    weight = sd[f"{key}.weight"]
    return F.conv2d(x, weight, sd[f"{key}.bias"], padding=weight.shape[-1] // 2)


def position_attention(x: Tensor, sd: dict[str, Tensor], key: str) -> tuple[Tensor, Tensor]:
    """SAGAN position attention: ``A[p, q] = softmax_q(Q_p · K_q)``, ``out[:, p] = γ Σ_q A[p, q] V[:, q] + x[:, p]``."""
    b, d, h, w = x.shape
    q = conv(x, sd, f"{key}.query").reshape(b, -1, h * w)
    k = conv(x, sd, f"{key}.key").reshape(b, -1, h * w)
    v = conv(x, sd, f"{key}.value").reshape(b, d, h * w)
    energy = torch.einsum("bcp,bcq->bpq", q, k)
    attention = torch.softmax(energy, dim=2)  # each position p distributes its attention over q
    attended = torch.einsum("bpq,bcq->bcp", attention, v).reshape(b, d, h, w)
    return sd[f"{key}.gamma"] * attended + x, attention


def fusion(vision: Tensor, text: Tensor, sd: dict[str, Tensor], output: str = "attended") -> Tensor:
    """``M^vt`` (B, 1, h, w) in eval mode (BatchNorm with its running statistics)."""
    parts = []
    for m, tag in ((vision, "v"), (text, "t")):
        lifted = torch.relu(batch_norm_eval(conv(m, sd, f"fusion.lift_{tag}.0"), sd, f"fusion.lift_{tag}.1"))
        attended, attention = position_attention(lifted, sd, f"fusion.sam_{tag}")
        if output == "attended":
            parts.append(attended)
        else:  # channel q at position p = A[p, q]
            b, _, h, w = m.shape
            parts.append(attention.transpose(1, 2).reshape(b, h * w, h, w))
    x = torch.cat(parts, 1)
    body = torch.relu(batch_norm_eval(conv(x, sd, "fusion.body.0"), sd, "fusion.body.1"))
    body = batch_norm_eval(conv(body, sd, "fusion.body.3"), sd, "fusion.body.4")
    skip = batch_norm_eval(conv(x, sd, "fusion.skip.0"), sd, "fusion.skip.1")
    return conv(torch.relu(body + skip), sd, "fusion.out")


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def segment(maps: Tensor, sd: dict[str, Tensor], bins: list[int], upsample: int, size: int) -> Tensor:
    """φ in eval mode: (B, c, h, w) stacked maps -> (B, 1, S, S) raw ``M^f``.

    ``bins`` are the pool sides at the working resolution (already scaled), finest first.
    """
    work = (maps.shape[2] * upsample, maps.shape[3] * upsample)
    x = torch.relu(conv(_resize(maps, work), sd, "segmenter.stem.0"))
    outs, previous = [], None
    for i, b in enumerate(bins):
        y = torch.relu(conv(F.adaptive_avg_pool2d(x, b), sd, f"segmenter.init.{i}.0"))
        if previous is not None:  # the finer bin, resized to this one, merged in
            y = torch.relu(conv(torch.cat([y, _resize(previous, (b, b))], 1), sd, f"segmenter.merge.{i - 1}.0"))
        r = torch.relu(conv(y, sd, f"segmenter.refine.{i}.0"))
        y = y + torch.relu(conv(r, sd, f"segmenter.refine.{i}.2"))
        previous = y
        outs.append(_resize(y, work))
    x = torch.relu(conv(torch.cat(outs, 1), sd, "segmenter.fuse.0"))
    r = torch.relu(conv(x, sd, "segmenter.residual.0"))
    x = x + torch.relu(conv(r, sd, "segmenter.residual.2"))
    x = conv(torch.relu(conv(x, sd, "segmenter.head.0")), sd, "segmenter.head.3")
    return _resize(x, (size, size))


def area_mask(mask: Tensor, grid: tuple[int, int]) -> Tensor:
    """(B, 1, S, S) pixel mask -> (B, L) bool: a cell is anomalous when >= half its pixels are."""
    b, _, s, _ = mask.shape
    h, w = grid
    cells = mask.reshape(b, h, s // h, w, s // w).mean(dim=(2, 4))
    return cells.reshape(b, -1) >= 0.5
