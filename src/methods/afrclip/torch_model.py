"""AFR-CLIP as a plain ``nn.Module``: frozen CLIP + SP + stage adapters + MPFA + CMFR + scoring.

Forward pass (spec 1.3), shapes for B images, L = gh * gw patches, C ViT width, D joint width,
S tapped stages:

1. SP (optional): frozen source feature (B, F) -> prompts (B, K, C) -> inserted by a block hook.
2. Frozen ViT taps at ``layers``, prompts stripped: S x (B, 1 + L, C).
3. Stage adapters (raw tokens, no ``ln_post``): S x (B, 1 + L, D); MPFA on the patch grid.
4. Text: three frozen CLIP prompt features per category (cached) -> shared text adapter
   -> normal / abnormal / stateless (B, D) each.
5. CMFR (optional): rectified text per token (B, 1 + L, D); scoring against the prototypes
   -> (B, 1 + L, 2) logits per stage.
6. Image score = mean over stages of the CLS abnormal probability; map = mean over stages of the
   patch abnormal probabilities (B, gh, gw). Upsampling is linear, so averaging before the shared
   post-processing upsamples equals the paper's average of upsampled maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from src.backbone.clip import CLIPBackbone
from src.contracts import MethodOutput
from src.seeding import module_seed

from .adapters import StageAdapters, TextAdapter
from .cmfr import CMFR
from .mpfa import MPFA
from .prompts import ABNORMAL, NORMAL, STATELESS, prompts_for
from .scoring import prototype_logits
from .sp import CNNFeatures, SelfPrompting, cnn_feature_dim, prompt_plan


@dataclass
class AFROutput(MethodOutput):
    """Result of :meth:`AFRCLIPModel.forward`.

    Attributes:
        anomaly_map: (B, gh, gw) abnormal probability averaged over stages.
        pred_score: (B,) CLS abnormal probability averaged over stages.
        stage_logits: per stage (B, 1 + L, 2) logits ``[S_n, S_a] / tau``, token 0 the CLS token
            (the losses' input).
    """

    stage_logits: list[torch.Tensor]


class AFRCLIPModel(nn.Module):
    """AFR-CLIP Every ablation switch of the paper's tables is an argument.

    Args:
        backbone: open_clip model name (paper: ``ViT-L-14-336-quickgelu``).
        pretrained: CLIP weights (``openai``, a tag, a path, ``none``, ``auto``).
        image_size: input side in pixels (paper: 518).
        layers: tapped blocks, one stage each (paper: 6, 12, 18, 24).
        pos_embed_mode: backbone position-embedding resize (``bicubic_once`` for AFR).
        grad_checkpointing: recompute ViT blocks in backward; None = on exactly when SP is on.
        weights_cache_dir: open_clip cache folder.
        use_cmfr: text-on-text scoring through CMFR; False = plain image-text scoring.
        use_sp: self prompting.
        sp_stages: prompted stages (1-based).
        sp_insert: ``append`` (default) or ``overwrite`` (Eq. 18 literally).
        sp_use_pv / sp_use_pl: image-conditioned / learnable prompts (neither = SP off).
        sp_num_prompts: K.
        sp_source: ``wide_resnet50_2`` | ``resnet18`` | ``clip_global``.
        sp_cnn_pretrained: CNN weights, ``auto`` | ``imagenet`` | path | ``none``.
        sp_drop_after_last_stage: remove the appended prompts after the last prompted block.
        mpfa_kernel: MPFA neighbourhood m (1 = off).
        temperature: softmax temperature of the scoring (paper 1.0; default 0.07).
        cmfr_gate: ``vector`` or ``scalar``.
        cmfr_per_stage: one CMFR per stage instead of one shared.
        cmfr_normalize: L2-normalise visual and text features before CMFR (README A7).
        prototypes: ``class`` (object name in the prompts) or ``agnostic`` ("object").
    """

    def __init__(
        self,
        backbone: str = "ViT-L-14-336-quickgelu",
        pretrained: str = "openai",
        image_size: int = 518,
        layers: Sequence[int] = (6, 12, 18, 24),
        pos_embed_mode: str = "bicubic_once",
        grad_checkpointing: bool | None = None,
        weights_cache_dir: str | None = None,
        use_cmfr: bool = True,
        use_sp: bool = True,
        sp_stages: Sequence[int] = (1,),
        sp_insert: str = "append",
        sp_use_pv: bool = True,
        sp_use_pl: bool = True,
        sp_num_prompts: int = 5,
        sp_source: str = "wide_resnet50_2",
        sp_cnn_pretrained: str = "auto",
        sp_drop_after_last_stage: bool = False,
        mpfa_kernel: int = 3,
        temperature: float = 0.07,
        cmfr_gate: str = "vector",
        cmfr_per_stage: bool = False,
        cmfr_normalize: bool = True,
        prototypes: str = "class",
    ) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 (paper 1.0, default 0.07), got {temperature}")
        self.sp_active = bool(use_sp and (sp_use_pv or sp_use_pl))
        if grad_checkpointing is None:
            grad_checkpointing = self.sp_active
        self.backbone = CLIPBackbone(
            backbone, pretrained, image_size=image_size, pos_embed_mode=pos_embed_mode,
            grad_checkpointing=grad_checkpointing, weights_cache_dir=weights_cache_dir,
        )
        self.layers = [int(i) for i in layers]
        self.backbone._check_layers(self.layers)
        width, dim = self.backbone.width, self.backbone.embed_dim
        self.temperature = float(temperature)
        self.prototypes = prototypes
        prompts_for("object", prototypes)  # validates ``prototypes`` now rather than at first forward
        self.cmfr_normalize = cmfr_normalize

        # --- SP
        self.sp_source = sp_source
        self.sp_cnn: CNNFeatures | None = None
        self.sp: SelfPrompting | None = None
        self.plan: dict[int, str] = {}
        source_dim = cnn_feature_dim(sp_source)  # validates sp_source
        if self.sp_active:
            self.plan = prompt_plan(self.layers, [int(s) for s in sp_stages], sp_insert,
                                    self.backbone.num_layers, sp_drop_after_last_stage)
            if sp_use_pv and source_dim is not None:
                with module_seed("afr.sp_cnn"):
                    self.sp_cnn = CNNFeatures(sp_source, sp_cnn_pretrained)
            with module_seed("afr.sp"):
                self.sp = SelfPrompting(width, sp_num_prompts, source_dim or dim, sp_use_pv, sp_use_pl)

        # --- adapters, MPFA, CMFR. Each block starts from its own seed (run seed, name), so an
        # ablation switch above does not change the starting weights of what follows.
        with module_seed("afr.stage_adapters"):
            self.stage_adapters = StageAdapters(len(self.layers), width, dim)
        with module_seed("afr.text_adapter"):
            self.text_adapter = TextAdapter(dim)
        with module_seed("afr.mpfa"):
            self.mpfa = MPFA(mpfa_kernel, self.backbone.grid_size)
        self.cmfr: nn.ModuleList | None = None
        if use_cmfr:
            count = len(self.layers) if cmfr_per_stage else 1
            with module_seed("afr.cmfr"):
                self.cmfr = nn.ModuleList(CMFR(dim, gate=cmfr_gate) for _ in range(count))

        # Frozen CLIP text features per category: (3, D) rows normal / abnormal / stateless.
        self._text_cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ text
    def frozen_text_features(self, category: str) -> torch.Tensor:
        """(3, D) frozen CLIP features of the category's three prompts, computed once and cached."""
        feats = self._text_cache.get(category)
        if feats is None:
            feats = self.backbone.encode_text(prompts_for(category, self.prototypes)).float()
            self._text_cache[category] = feats
        return feats

    def text_features(self, categories: Sequence[str]) -> torch.Tensor:
        """(B, 3, D) adapted text features (normal, abnormal, stateless) of each image's category."""
        device = self.text_adapter.weight.device
        unique = list(dict.fromkeys(categories))
        frozen = torch.stack([self.frozen_text_features(c).to(device) for c in unique])  # (U, 3, D)
        adapted = self.text_adapter(frozen)
        index = torch.tensor([unique.index(c) for c in categories], device=device)
        return adapted[index]

    # ------------------------------------------------------------------ vision
    def prompt_tokens(self, images: torch.Tensor) -> torch.Tensor | None:
        """(B, K, C) SP prompt tokens, or None with SP off."""
        if self.sp is None:
            return None
        source = None
        if self.sp.pv is not None:
            source = self.sp_cnn(images) if self.sp_cnn is not None else self.backbone.encode_image(images)
        return self.sp(source, images.shape[0])

    def visual_taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Raw tokens of the tapped blocks, prompts stripped: S x (B, 1 + L, C)."""
        prompts = self.prompt_tokens(images)
        hook = None if prompts is None else SelfPrompting.hook(prompts, self.plan)
        return self.backbone.encode_image_layers(images, self.layers, before_block=hook)

    # ------------------------------------------------------------------ forward
    def forward(self, images: torch.Tensor, categories: Sequence[str]) -> AFROutput:
        """Score a batch.

        Args:
            images: (B, 3, H, W) CLIP-normalised images.
            categories: B category names (select the text prototypes).
        """
        if len(categories) != images.shape[0]:
            raise ValueError(f"Got {images.shape[0]} images but {len(categories)} categories")
        visual = [self.mpfa(f) for f in self.stage_adapters(self.visual_taps(images))]
        text = self.text_features(categories)
        normal, abnormal, stateless = text[:, NORMAL], text[:, ABNORMAL], text[:, STATELESS]
        if self.cmfr_normalize:
            visual = [F.normalize(v, dim=-1) for v in visual]
            stateless = F.normalize(stateless, dim=-1)
        stage_logits = []
        for s, tokens in enumerate(visual):
            query = tokens
            if self.cmfr is not None:
                query = self.cmfr[s % len(self.cmfr)](tokens, stateless)
            stage_logits.append(prototype_logits(query, normal, abnormal, self.temperature))
        probs = torch.stack([lg.softmax(dim=-1)[..., 1] for lg in stage_logits]).mean(0)  # (B, 1 + L)
        gh, gw = self.backbone.grid_size
        anomaly_map = probs[:, 1:].reshape(-1, gh, gw)
        return AFROutput(anomaly_map=anomaly_map, pred_score=probs[:, 0], stage_logits=stage_logits)

    # ------------------------------------------------------------------ bookkeeping
    def describe(self) -> dict:
        """What a results file records about the SP source (beside the CLIP backbone)."""
        meta = {"sp_active": self.sp_active, "sp_source": self.sp_source}
        if self.sp_cnn is not None:
            meta.update(sp_cnn=self.sp_cnn.arch, sp_cnn_weights=self.sp_cnn.weights_path,
                        sp_cnn_random_init=self.sp_cnn.random_init)
        return meta
