"""Training-free CLIP baseline: prompt-ensemble zero-shot scoring, plus a WinCLIP+-style k-shot mode.

Zero-shot: each tapped layer's patch tokens go through CLIP's own ``ln_post`` and projection and
are compared with a normal and an abnormal text embedding (prompt ensembles averaged); the
anomaly map is the abnormal softmax probability averaged over layers; the image score is the
abnormal probability of CLIP's global image embedding.

k-shot: the raw (un-projected) patch tokens of the k reference images form a memory per layer;
each test patch gets ``min_ref (1 - cos) / 2``, averaged over layers. The final map is the mean of
the zero-shot and the k-shot maps; the image score the mean of the zero-shot score and the
k-shot map's maximum.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.names import object_name
from src.backbone import CLIPBackbone
from src.contracts import MethodOutput

from .prompts import ABNORMAL_STATES, NORMAL_STATES, prompt_ensemble


def stage_layers(depth: int, num_stages: int) -> list[int]:
    """Evenly spaced 1-based block indices ending at the last block: depth 24, 4 stages -> 6, 12, 18, 24."""
    if not 1 <= num_stages <= depth:
        raise ValueError(f"num_stages must be in 1..{depth} for a {depth}-block backbone, got {num_stages}")
    return [round(depth * (s + 1) / num_stages) for s in range(num_stages)]


class CLIPBaselineModel(nn.Module):
    """Args:
        backbone: the frozen CLIP wrapper.
        layers: 1-based blocks whose patch tokens are scored; ``None`` uses ``num_stages`` evenly
            spaced blocks.
        num_stages: number of evenly spaced blocks when ``layers`` is None.
        temperature: softmax temperature of the cosine similarities (CLIP's 0.01..0.07 range).
        few_shot: add the k-shot reference distance; every category must have references
            (:meth:`set_references`).
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        layers: Sequence[int] | None = None,
        num_stages: int = 4,
        temperature: float = 0.07,
        few_shot: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.few_shot = few_shot
        self.layers = list(layers) if layers else stage_layers(backbone.num_layers, num_stages)
        backbone._check_layers(self.layers)
        self.temperature = temperature
        self._text_cache: dict[str, torch.Tensor] = {}
        self._memory: dict[str, list[torch.Tensor]] = {}

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def text_features(self, noun: str) -> torch.Tensor:
        """(2, D) unit-norm normal/abnormal embeddings, computed once per object noun."""
        if noun not in self._text_cache:
            rows = []
            for states in (NORMAL_STATES, ABNORMAL_STATES):
                emb = F.normalize(self.backbone.encode_text(prompt_ensemble(noun, states)), dim=-1)
                rows.append(F.normalize(emb.mean(0), dim=-1))
            self._text_cache[noun] = torch.stack(rows)
        return self._text_cache[noun]

    def clear_caches(self) -> None:
        """Forget the cached text embeddings and the k-shot memories."""
        self._text_cache.clear()
        self._memory.clear()

    # ------------------------------------------------------------------ k-shot memory
    @torch.no_grad()
    def set_references(self, key: str, images: torch.Tensor) -> None:
        """Store the patch tokens of (k, 3, H, W) reference images under ``key`` (a category)."""
        taps = self.backbone.encode_image_layers(images, self.layers)
        self._memory[key] = [F.normalize(t[:, 1:].reshape(-1, t.shape[-1]), dim=-1) for t in taps]

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def forward(self, images: torch.Tensor, categories: Sequence[str]) -> MethodOutput:
        """Args:
            images: (B, 3, H, W).
            categories: B category names: the prompt noun (``datamodules.names.object_name``) and,
                with ``few_shot``, the reference memory of each image.

        Returns:
            ``anomaly_map`` (B, gh, gw) and ``pred_score`` (B,).
        """
        taps = self.backbone.encode_image_layers(images, self.layers)
        text = torch.stack([self.text_features(object_name(c)) for c in categories])  # (B, 2, D)
        gh, gw = self.backbone.grid_size
        maps = []
        for tokens in taps:
            patches = F.normalize(self.backbone.project(tokens[:, 1:]), dim=-1)  # (B, L, D)
            logits = torch.einsum("bld,bcd->blc", patches, text) / self.temperature
            maps.append(logits.softmax(-1)[..., 1])
        anomaly_map = torch.stack(maps).mean(0).reshape(-1, gh, gw)
        image = F.normalize(self.image_embedding(images, taps), dim=-1)
        score = (torch.einsum("bd,bcd->bc", image, text) / self.temperature).softmax(-1)[:, 1]
        if self.few_shot:
            few = self.reference_distance(taps, categories).reshape(-1, gh, gw)
            anomaly_map = (anomaly_map + few) / 2
            score = (score + few.flatten(1).amax(1)) / 2
        return MethodOutput(anomaly_map=anomaly_map, pred_score=score)

    def image_embedding(self, images: torch.Tensor, taps: list[torch.Tensor]) -> torch.Tensor:
        """CLIP's global embedding (B, D), reusing the last tap when it is the last block."""
        if self.layers[-1] == self.backbone.num_layers:
            return self.backbone.project(taps[-1][:, 0])
        return self.backbone.encode_image(images)

    def reference_distance(self, taps: list[torch.Tensor], memory_keys: Sequence[str]) -> torch.Tensor:
        """(B, L) nearest-reference cosine distance ``(1 - cos) / 2`` averaged over layers."""
        missing = sorted({k for k in memory_keys if k not in self._memory})
        if missing:
            raise KeyError(f"No k-shot references were set for {missing}; call set_references first.")
        per_layer = []
        for layer, tokens in enumerate(taps):
            patches = F.normalize(tokens[:, 1:], dim=-1)
            dist = torch.stack([
                (1 - patches[b] @ self._memory[key][layer].T).amin(-1) / 2 for b, key in enumerate(memory_keys)
            ])
            per_layer.append(dist)
        return torch.stack(per_layer).mean(0)
