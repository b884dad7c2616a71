"""Linear probe (APRIL-GAN / VAND-challenge linear adapters) as a plain ``nn.Module``.

Shapes for B images, L = gh * gw patches, C the ViT width, D the joint (text) width, S taps:

1. Frozen ViT, raw tokens of the tapped blocks (no ``ln_post``, no projection), CLS dropped:
   S x (B, L, C).
2. One trainable ``Linear(C -> D)`` per tap, then L2 normalisation: S x (B, L, D).
3. Frozen text: the prompt-ensemble embeddings of the category, normal and abnormal, each
   unit-norm: (B, D, 2).
4. Logits ``logit_scale * <v, t>`` per tap: S x (B, L, 2); softmax over the two states.
5. Map: mean over taps of the abnormal probability, (B, gh, gw). APRIL-GAN sums the taps; the mean
   is the sum over S, which ranks pixels and images identically and stays in [0, 1].

The only trainable parameters are the S linear layers; everything else is the frozen backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.names import object_name
from src.backbone.clip import CLIPBackbone
from src.contracts import MethodOutput

from .prompts import state_prompts


@dataclass
class LinearOutput(MethodOutput):
    """Result of :meth:`LinearProbeModel.forward`.

    Attributes:
        anomaly_map: (B, gh, gw) abnormal probability averaged over taps.
        pred_score: (B,) the raw map's maximum (the probe has no image score of its own; evaluation
            replaces it by the smoothed map's maximum).
        layer_logits: per tap (B, L, 2) logits, channel 0 normal, 1 abnormal (the losses' input).
    """

    layer_logits: list[torch.Tensor]


class LinearProbeModel(nn.Module):
    """Per-tap linear maps from patch tokens into the text space, scored against two prompts.

    Args:
        backbone: open_clip model name.
        pretrained: CLIP weights (``openai``, a tag, a path, ``none``, ``auto``).
        image_size: input side in pixels.
        layers: tapped blocks (1-based), one linear layer each.
        logit_scale: multiplies the cosines before the softmax (APRIL-GAN: 100).
        pos_embed_mode: backbone position-table resize (``bicubic_once``, open_clip's).
        weights_cache_dir: open_clip cache folder.
    """

    def __init__(
        self,
        backbone: str = "ViT-L-14-336-quickgelu",
        pretrained: str = "openai",
        image_size: int = 518,
        layers: Sequence[int] = (6, 12, 18, 24),
        logit_scale: float = 100.0,
        pos_embed_mode: str = "bicubic_once",
        weights_cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0 (APRIL-GAN: 100), got {logit_scale}")
        self.backbone = CLIPBackbone(backbone, pretrained, image_size=image_size,
                                     pos_embed_mode=pos_embed_mode, weights_cache_dir=weights_cache_dir)
        self.layers = [int(i) for i in layers]
        self.backbone._check_layers(self.layers)
        self.logit_scale = float(logit_scale)
        width, dim = self.backbone.width, self.backbone.embed_dim
        # PyTorch's default init, as APRIL-GAN's LinearLayer.
        self.linears = nn.ModuleList(nn.Linear(width, dim) for _ in self.layers)
        self._text_cache: dict[str, torch.Tensor] = {}

    def text_features(self, noun: str) -> torch.Tensor:
        """(D, 2) frozen unit-norm ensemble embeddings, column 0 normal, 1 abnormal (cached)."""
        feats = self._text_cache.get(noun)
        if feats is None:
            columns = []
            for sentences in state_prompts(noun):
                emb = F.normalize(self.backbone.encode_text(sentences).float(), dim=-1)
                columns.append(F.normalize(emb.mean(dim=0), dim=-1))
            feats = torch.stack(columns, dim=1)
            self._text_cache[noun] = feats
        return feats

    def clear_caches(self) -> None:
        """Forget the cached text embeddings."""
        self._text_cache.clear()

    def forward(self, images: torch.Tensor, categories: Sequence[str]) -> LinearOutput:
        """Score a batch.

        Args:
            images: (B, 3, H, W) CLIP-normalised images.
            categories: B category names (their object nouns select the text embeddings).
        """
        if len(categories) != images.shape[0]:
            raise ValueError(f"Got {images.shape[0]} images but {len(categories)} categories")
        device = self.linears[0].weight.device
        text = torch.stack([self.text_features(object_name(c)).to(device) for c in categories])  # (B, D, 2)
        taps = self.backbone.encode_image_layers(images, self.layers)
        logits = []
        for linear, tokens in zip(self.linears, taps):
            v = F.normalize(linear(tokens[:, 1:].float()), dim=-1)  # (B, L, D)
            logits.append(self.logit_scale * torch.bmm(v, text))
        probs = torch.stack([lg.softmax(dim=-1)[..., 1] for lg in logits]).mean(0)  # (B, L)
        gh, gw = self.backbone.grid_size
        anomaly_map = probs.reshape(-1, gh, gw)
        return LinearOutput(anomaly_map=anomaly_map, pred_score=anomaly_map.flatten(1).amax(1), layer_logits=logits)
