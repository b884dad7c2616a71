"""FB-CLIP as released: prompts + MSTFF text, MVFBE views, shared FB-Attention, background
subtraction, 15-set fusion with softmax layer weights.

Pure torch (no Lightning). Shapes: ``B`` images, ``L = gh * gw`` patch tokens, ``C`` vision width,
``D`` joint width, ``S`` token sets (= layers x views; 15 as released).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from src.backbone import CLIPBackbone
from src.contracts import MethodOutput
from src.seeding import module_seed

from .background import BANKS, CANDIDATES, background_bank, background_prototype, subtract_background
from .fb_attention import FBAttention
from .mstff import STRATEGIES, TextFusion
from .mvfbe import INDICATOR_WEIGHTS, build_views, check_views, foreground_score, soft_mask
from .prompt_learner import PromptLearner
from .scr import scr_loss

RELEASED_LAYERS = (1, 6, 12, 18, 24)
#: Norms before ``visual.proj`` when FB-Attention is off (see ``FBCLIPModel``).
PLAIN_PROJ_NORMS = ("ln_post", "none")


@dataclass
class FBOutput(MethodOutput):
    """What one forward pass produces.

    Attributes:
        anomaly_map: (B, gh, gw) abnormal probability of every patch.
        pred_score: (B,) abnormal probability of the CLS token.
        probs: (B, 1 + L, 2) fused class probabilities of every token.
        text: (2, D) unit-norm text features (normal, abnormal).
        sets: S projected token sets, each (B, 1 + L, D) (SCR's input).
    """

    probs: torch.Tensor
    text: torch.Tensor
    sets: list[torch.Tensor]


class FBCLIPModel(nn.Module):
    """The FB-CLIP network on a frozen CLIP backbone.

    Args:
        backbone: frozen CLIP (built with ``pos_embed_mode="bilinear_per_forward"`` and, as
            released, ``text_causal_mask=False``).
        layers: tapped vision blocks (1-based).
        n_ctx: learnable context vectors per prompt.
        prompt_wording: ``released`` or ``paper``.
        deep_prompt_depth: 0 (release) or the AnomalyCLIP depth of injected deep text prompts.
        text_strategies: subset of ``eot``, ``gp``, ``attn``.
        views: subset of ``id``, ``sem``, ``spa``.
        fb_attention: apply the shared FB-Attention to every set.
        plain_proj_norm: with ``fb_attention`` off, the norm before ``visual.proj``: ``ln_post``
            (CLIP's own projection, as AnomalyCLIP projects its patch tokens) or ``none`` (raw
            residual-stream tokens straight into ``proj``). Unused while FB-Attention is on: its
            output is already LayerNorm-ed and the release projects it without ``ln_post``.
        background_subtraction: apply BS.
        bg_bank: ``half`` (release, L/2) or ``full`` (L).
        bg_candidates: ``index`` (release: first rows) or ``score`` (lowest foreground score).
        indicator_weights: weights of (saliency, centre distance, CLS inconsistency, temporal).
        soft_mask_values: (background, foreground) values of the soft mask.
        mask_threshold: threshold on the smoothed foreground score.
        sem_alpha: mixing weight of the SEM aggregate.
        layer_weight_count: entries of the softmax layer weights (6 as released for 5 layers).
        temperature: logit temperature of the image-text similarity.
        heads, head_dim: FB-Attention geometry.
        activation_checkpointing: recompute FB-Attention in backward instead of keeping its
            activations (training memory).
        scr_*: SCR parameters (:func:`~src.methods.fbclip.scr.scr_loss`).
    """

    def __init__(
        self,
        backbone: CLIPBackbone,
        layers: Sequence[int] = RELEASED_LAYERS,
        n_ctx: int = 12,
        prompt_wording: str = "released",
        deep_prompt_depth: int = 0,
        text_strategies: Sequence[str] = STRATEGIES,
        views: Sequence[str] = ("id", "sem", "spa"),
        fb_attention: bool = True,
        plain_proj_norm: str = "ln_post",
        background_subtraction: bool = True,
        bg_bank: str = "half",
        bg_candidates: str = "index",
        indicator_weights: Sequence[float] = INDICATOR_WEIGHTS,
        soft_mask_values: Sequence[float] = (0.5, 1.0),
        mask_threshold: float = 0.5,
        sem_alpha: float = 0.6,
        layer_weight_count: int = 6,
        temperature: float = 0.07,
        heads: int = 8,
        head_dim: int = 64,
        activation_checkpointing: bool = False,
        scr_tau: float = 0.07,
        scr_margin: float = 1.0,
        scr_weight: float = 0.15,
        scr_w_entropy: float = 1.0,
        scr_w_margin: float = 0.5,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        backbone._check_layers(list(layers))
        if layer_weight_count < len(layers):
            raise ValueError(
                f"layer_weight_count={layer_weight_count} must be >= the number of layers ({len(layers)})"
            )
        if bg_bank not in BANKS:
            raise ValueError(f"bg_bank={bg_bank!r} is not known; valid: {list(BANKS)}")
        if bg_candidates not in CANDIDATES:
            raise ValueError(f"bg_candidates={bg_candidates!r} is not known; valid: {list(CANDIDATES)}")
        if len(soft_mask_values) != 2:
            raise ValueError(f"soft_mask_values needs (background, foreground), got {list(soft_mask_values)}")
        if len(indicator_weights) != 4:
            raise ValueError(f"indicator_weights needs 4 values (S, D, I, T), got {list(indicator_weights)}")
        if plain_proj_norm not in PLAIN_PROJ_NORMS:
            raise ValueError(f"plain_proj_norm={plain_proj_norm!r} is not known; valid: {list(PLAIN_PROJ_NORMS)}")
        self.layers = tuple(int(i) for i in layers)
        self.views = check_views(views)
        self.use_fb_attention = fb_attention
        self.plain_proj_norm = plain_proj_norm
        self.background_subtraction = background_subtraction
        self.bg_bank = bg_bank
        self.bg_candidates = bg_candidates
        self.indicator_weights = tuple(float(w) for w in indicator_weights)
        self.soft_mask_values = tuple(float(v) for v in soft_mask_values)
        self.mask_threshold = float(mask_threshold)
        self.sem_alpha = float(sem_alpha)
        self.temperature = float(temperature)
        self.activation_checkpointing = activation_checkpointing
        self.scr_args = {"tau": scr_tau, "margin": scr_margin, "weight": scr_weight,
                         "w_entropy": scr_w_entropy, "w_margin": scr_w_margin}

        # Each block starts from its own seed (run seed, name): switching one (deep prompts, a text
        # strategy) leaves the starting weights of the others unchanged.
        with module_seed("fb.prompt"):
            self.prompt = PromptLearner(backbone, n_ctx, prompt_wording, deep_prompt_depth)
        with module_seed("fb.text_fusion"):
            self.text_fusion = TextFusion(backbone.text_width, backbone.embed_dim, text_strategies)
        with module_seed("fb.fb_attention"):
            self.fb_attention = FBAttention(backbone.width, heads, head_dim)
        if not fb_attention:
            self.fb_attention.requires_grad_(False)
        # Softmax layer weights; the release has one entry more than it has layers (unused, but
        # in the softmax denominator), so at init every set weighs 1/6.
        self.layer_weights = nn.Parameter(torch.full((layer_weight_count,), 1.0 / layer_weight_count))
        self._text_cache: tuple[tuple, torch.Tensor] | None = None

    # ------------------------------------------------------------------ text
    def text_features(self) -> torch.Tensor:
        """(2, D) text features; under no_grad they are computed once per parameter state.

        The prompts are learnable, so the features change with every optimiser step, but an
        evaluation sees the same ones for every image: keying the cache on the parameters'
        in-place versions makes it refresh after a step or a ``load_state_dict``.
        """
        if torch.is_grad_enabled():
            return self.encode_text()
        params = [*self.prompt.parameters(), *self.text_fusion.parameters()]
        key = tuple((p.data_ptr(), p._version) for p in params)
        if self._text_cache is None or self._text_cache[0] != key:
            self._text_cache = (key, self.encode_text())
        return self._text_cache[1]

    def encode_text(self) -> torch.Tensor:
        """(2, D) unit-norm fused text features, row 0 normal, row 1 abnormal."""
        deep = list(self.prompt.deep_prompts) or None
        out = self.backbone.encode_text_embeddings(self.prompt(), self.prompt.eot_indices, deep_prompts=deep)
        return self.text_fusion(out.tokens, out.eot, self.backbone.project_text)

    # ------------------------------------------------------------------ image
    def _refine(self, y: torch.Tensor) -> torch.Tensor:
        if not self.use_fb_attention:
            return y
        if self.activation_checkpointing and torch.is_grad_enabled():
            return checkpoint(self.fb_attention, y, use_reentrant=False)
        return self.fb_attention(y)

    def token_sets(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[int]]:
        """MVFBE + FB-Attention + BS, before the projection.

        Returns:
            S tensors (B, 1 + L, C) ordered [layer 1 views..., layer 2 views..., ...], and the layer
            position of each set.
        """
        feats = self.backbone.encode_image_layers(images, self.layers)
        needs_mask = any(v in ("sem", "spa") for v in self.views)
        needs_score = needs_mask or (self.background_subtraction and self.bg_candidates == "score")
        sets, set_layer, set_scores = [], [], []
        prev = None
        for li, tokens in enumerate(feats):
            # Frozen inputs only: the mask, SEM and SPA carry no gradient.
            with torch.no_grad():
                score = foreground_score(tokens, prev, self.indicator_weights) if needs_score else None
                p = soft_mask(score, self.soft_mask_values, self.mask_threshold) if needs_mask else None
                views = build_views(tokens, p, self.views, self.backbone.grid_size, self.sem_alpha)
            prev = tokens
            for y in views:
                sets.append(self._refine(y))
                set_layer.append(li)
                set_scores.append(score)
        if self.background_subtraction:
            scores = set_scores if self.bg_candidates == "score" else None
            prototype = background_prototype(background_bank(sets, self.bg_bank, scores))
            sets = [subtract_background(z, prototype) for z in sets]
        return sets, set_layer

    def forward(self, images: torch.Tensor, categories: Sequence[str]) -> FBOutput:
        """Images (B, 3, H, W), CLIP-normalised -> :class:`FBOutput`.

        ``categories`` (B names) are not read: FB-CLIP's learned prompts are object-agnostic.
        """
        text = self.text_features()
        sets, set_layer = self.token_sets(images)
        # FB-Attention's output is LayerNorm-ed and the release projects it without ln_post. Without
        # FB-Attention the sets are raw residual-stream tokens, which CLIP normalises with ln_post
        # before its projection (``plain_proj_norm``).
        ln_post = not self.use_fb_attention and self.plain_proj_norm == "ln_post"
        projected = [self.backbone.project(z, ln_post=ln_post) for z in sets]
        weights = torch.softmax(self.layer_weights, dim=0)
        logits = sum(
            weights[li] * (F.normalize(v, dim=-1) @ text.t()) / self.temperature
            for v, li in zip(projected, set_layer)
        )
        probs = torch.softmax(logits, dim=-1)
        gh, gw = self.backbone.grid_size
        anomaly_map = probs[:, 1:, 1].reshape(-1, gh, gw)
        return FBOutput(anomaly_map=anomaly_map, pred_score=probs[:, 0, 1], probs=probs, text=text, sets=projected)

    def scr(self, out: FBOutput) -> torch.Tensor:
        """SCR on the last projected set (layer 24, SPA view as released)."""
        return scr_loss(out.sets[-1], out.text, **self.scr_args)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters that train (the backbone is frozen)."""
        return [p for p in self.parameters() if p.requires_grad]
