"""VTFusion as a pure torch module: AIE + ATE + MPF on a frozen CLIP backbone.

Shapes: ``B`` images, ``S`` input side, ``(h, w)`` token grid, ``L = h·w``, ``C`` vision width,
``D`` joint width, ``n`` stages (tapped blocks).

Flow: frozen taps (B, L, C) per stage -> ``ln_post`` + trainable linear (B, L, D) ->
feature adaptor ``F_l^v`` (B, D, h, w) -> stacked ``F^v`` (B, L, n·D) -> nearest-prototype distance
``M^v`` (B, 1, h, w); ``F_l^v`` against the adapted text features -> ``M^t`` (B, 1, h, w); fusion
``M^vt`` and the segmentation net φ -> ``M^f`` (B, 1, S, S); image score = max of ``M^f``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from src.backbone import CLIPBackbone
from src.contracts import MethodOutput
from src.seeding import module_seed

from .aie import (
    FeatureAdaptor,
    StageLinear,
    afs_loss,
    grid_mask,
    nfc_loss,
    prototype_distances,
    prototypes_from_features,
)
from .ate import TextAdapter, build_prompts, ensemble_embedding, text_guided_map
from .mpf import FusionBlock, SegmentationNet
from .nearest import PrototypeNorms


class VTFusionModel(nn.Module):
    """VTFusion for one category (one model per category, k-shot protocol).

    Args:
        backbone: open_clip architecture (paper: ``ViT-B-16-plus-240``).
        pretrained: weights tag or path (paper: ``laion400m_e31``), ``none`` for random weights.
        image_size: input side S (paper setting 240, RESOLUTION B1).
        layers: tapped blocks, 1-based (RESOLUTION B2: 3, 6, 9, 12).
        pos_embed_mode: backbone position-embedding resize mode.
        linear_init: ``clip`` (from ``visual.proj``, RESOLUTION B3) or ``random``.
        adaptor: ``coordconv`` (RESOLUTION B4) or ``conv3x3``.
        vision_topk: channels of ``M^v``: 1 = nearest distance (Eq. 5), k_v = PCSNet's k_v nearest.
        hinge_topk: nearest distances averaged in NFC/AFS (1 = paper, 3 = PCSNet).
        distance: ``euclidean`` (Eq. 2) or ``squared``.
        r: NFC radius (1e-5).
        learnable_r: make r a trained parameter (PCSNet) instead of a constant.
        alpha: AFS margin (0.1; PCSNet's code 0.2).
        use_ate: train the text adapter (Table II).
        use_aie: use the image adaptor, prototypes, NFC/AFS and ``M^v`` (Table II).
        use_mpf: fuse with MPF + φ; ``False`` = the "direct concatenation" baseline (Table II).
        sam_output: ``attended`` (DEVIATION B8) or ``attention_matrix``.
        fusion_dim: lifted width d of the fusion block (32).
        seg_width: width of φ (128).
        seg_bins: φ's pool sizes at a 60 x 60 working size.
        seg_upsample: φ's working resolution / token grid (4).
        prompt_set: ``ensemble`` (APRIL-GAN) or ``pair`` (the paper's two sentences).
        add_normal_state: add "normal {}" to the ensemble's normal states.
        logit_scale: temperature of the text-guided softmax (100, RESOLUTION B6).
    """

    def __init__(
        self,
        backbone: str = "ViT-B-16-plus-240",
        pretrained: str = "laion400m_e31",
        image_size: int = 240,
        layers: Sequence[int] = (3, 6, 9, 12),
        pos_embed_mode: str = "bicubic_once",
        linear_init: str = "clip",
        adaptor: str = "coordconv",
        vision_topk: int = 1,
        hinge_topk: int = 1,
        distance: str = "euclidean",
        r: float = 1e-5,
        learnable_r: bool = False,
        alpha: float = 0.1,
        use_ate: bool = True,
        use_aie: bool = True,
        use_mpf: bool = True,
        sam_output: str = "attended",
        fusion_dim: int = 32,
        seg_width: int = 128,
        seg_bins: Sequence[int] = (60, 30, 15, 8),
        seg_upsample: int = 4,
        prompt_set: str = "ensemble",
        add_normal_state: bool = False,
        logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        if use_mpf and not use_aie:
            raise ValueError("use_mpf=True needs use_aie=True: MPF fuses the vision map M^v with M^t (Table II rows)")
        if not (use_ate or use_aie):
            raise ValueError("use_ate=False with use_aie=False leaves nothing to train; enable at least one")
        self.backbone = CLIPBackbone(backbone, pretrained, image_size=image_size, pos_embed_mode=pos_embed_mode)
        self.backbone._check_layers(list(layers))
        self.layers = [int(i) for i in layers]
        self.use_ate, self.use_aie, self.use_mpf = use_ate, use_aie, use_mpf
        self.vision_topk, self.hinge_topk, self.distance = int(vision_topk), int(hinge_topk), distance
        self.alpha = float(alpha)
        self.prompt_set, self.add_normal_state = prompt_set, add_normal_state
        self.logit_scale = float(logit_scale)
        num_patches = self.backbone.num_patches
        for name, value in (("vision_topk", vision_topk), ("hinge_topk", hinge_topk)):
            if not 1 <= int(value) <= num_patches:
                raise ValueError(f"{name}={value} must be in 1..{num_patches} (the number of prototypes)")

        dim, proj = self.backbone.embed_dim, self.backbone.visual.proj
        # Per-block seeds (src/seeding.py): an ablation row starts every block it shares from the same weights.
        with module_seed("vtf.linears"):
            self.linears = nn.ModuleList(StageLinear(self.backbone.visual.ln_post, proj, linear_init)
                                         for _ in self.layers)
        if use_aie:
            with module_seed("vtf.adaptors"):
                self.adaptors = nn.ModuleList(FeatureAdaptor(dim, adaptor) for _ in self.layers)
        else:
            # Without AIE the image features are CLIP's own projected patch tokens (APRIL-GAN's
            # zero-shot map), and only the text side learns (Table II row 1, RESOLUTION).
            self.adaptors = None
            self.linears.requires_grad_(False)
        with module_seed("vtf.text_adapter"):
            self.text_adapter = TextAdapter(dim, enabled=use_ate)
        if use_mpf:
            grid = self.backbone.grid_size
            with module_seed("vtf.fusion"):
                self.fusion = FusionBlock(self.vision_topk, 1, fusion_dim, sam_output, grid)
            with module_seed("vtf.segmenter"):
                self.segmenter = SegmentationNet(self.vision_topk + 2, seg_width, seg_bins, seg_upsample)
        if learnable_r:
            self.r = nn.Parameter(torch.tensor(float(r)))
        else:
            self.register_buffer("r", torch.tensor(float(r)))

        # Per-category state, set before training and saved with the checkpoint.
        self.register_buffer("prototypes", torch.zeros(num_patches, dim * len(self.layers)))
        self.register_buffer("vision_scale", torch.ones(()))
        self.register_buffer("text_embeddings", torch.zeros(2, dim))
        self.register_buffer("prepared", torch.zeros(2, dtype=torch.bool))  # [prototypes, text]
        # Inference cache of the prototypes' float64 copy and norms (not state: rebuilt on change).
        self._prototype_norms = PrototypeNorms()

    # ------------------------------------------------------------------ features
    def stage_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Per stage ``F_l^v``: (B, 3, S, S) -> list of (B, D, h, w)."""
        taps = self.backbone.encode_image_layers(images, self.layers)
        h, w = self.backbone.grid_size
        out = []
        for i, tokens in enumerate(taps):
            x = self.linears[i](tokens[:, 1:]).transpose(1, 2).reshape(tokens.shape[0], -1, h, w)
            out.append(self.adaptors[i](x) if self.adaptors is not None else x)
        return out

    @staticmethod
    def stack(stage_features: Sequence[torch.Tensor]) -> torch.Tensor:
        """``F^v``: list of (B, D, h, w) -> (B, L, n·D)."""
        return torch.cat(list(stage_features), dim=1).flatten(2).transpose(1, 2)

    # ------------------------------------------------------------------ per-category preparation
    @torch.no_grad()
    def set_text(self, object_name: str) -> None:
        """Embed the prompt ensemble of ``object_name`` with the frozen text encoder (once per category)."""
        normal, abnormal = build_prompts(object_name, self.prompt_set, self.add_normal_state)
        encode = self.backbone.encode_text
        embeddings = torch.stack([ensemble_embedding(encode(normal)), ensemble_embedding(encode(abnormal))])
        self.text_embeddings.copy_(embeddings)
        self.prepared[1] = True

    @torch.no_grad()
    def set_prototypes(self, shots: torch.Tensor) -> torch.Tensor:
        """Eq. 1 from the k shots with the current (initial) weights; frozen afterwards.

        Args:
            shots: (k, 3, S, S) the logged shots, CLIP-normalised, no synthesis.

        Returns:
            (k, L, n·D) the shots' stacked features.
        """
        if not self.use_aie:
            self.prepared[0] = True
            return torch.empty(0)
        was_training = self.training
        self.eval()
        features = self.stack(self.stage_features(shots))
        self.prototypes.copy_(prototypes_from_features(features))
        # m_v, the normal-data scale of the no-MPF baseline: the largest M^v over the shots, kept
        # away from 0 (k = 1 puts every shot on its own prototypes).
        m_v = prototype_distances(features, self.prototypes, 1, self.distance, self._prototype_norms).max()
        floor = 1e-6 * features.norm(dim=-1).mean()
        self.vision_scale.copy_(torch.maximum(m_v, floor))
        self.prepared[0] = True
        self.train(was_training)
        return features

    def check_prepared(self) -> None:
        """Refuse a forward before the prototypes and text embeddings exist."""
        if not bool(self.prepared[0]):
            raise RuntimeError(
                "VTFusion has no prototypes: they are computed from the k shots at the start of `fit` "
                "(or restored from a checkpoint); run fit first or load a trained checkpoint"
            )
        if not bool(self.prepared[1]):
            raise RuntimeError("VTFusion has no text embeddings: call set_text(object_name) or load a checkpoint")

    # ------------------------------------------------------------------ maps
    def text_features(self) -> torch.Tensor:
        """``F^t`` (2, D): adapted, unit-norm [normal, abnormal]."""
        return self.text_adapter(self.text_embeddings)

    def distances(self, stage_features: Sequence[torch.Tensor], topk: int) -> torch.Tensor:
        """(B, L, topk) nearest-prototype distances of the stacked features."""
        feats = self.stack(stage_features)
        return prototype_distances(feats, self.prototypes, topk, self.distance, self._prototype_norms)

    def vision_map(self, distances: torch.Tensor) -> torch.Tensor:
        """``M^v`` (B, vision_topk, h, w) from (B, L, >= vision_topk) distances."""
        h, w = self.backbone.grid_size
        return distances[..., : self.vision_topk].transpose(1, 2).reshape(distances.shape[0], -1, h, w)

    def final_map(self, vision: torch.Tensor | None, text: torch.Tensor) -> torch.Tensor:
        """``M^f`` (B, 1, S, S) from ``M^v`` (or None without AIE) and ``M^t``."""
        size = (self.backbone.image_size, self.backbone.image_size)
        if self.use_mpf:
            fused = self.fusion(vision, text)
            return self.segmenter(torch.cat([vision, text, fused], dim=1), size)
        # Direct-combination baseline (Table II rows 1-2): both maps brought to [0, ~1] and averaged.
        combined = text / len(self.layers)
        if vision is not None:
            combined = 0.5 * (combined + vision[:, :1] / self.vision_scale)
        return F.interpolate(combined, size=size, mode="bilinear", align_corners=False)

    def maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """All maps of a batch: ``vision`` (B, k_v, h, w) or absent, ``text`` (B, 1, h, w), ``final`` (B, 1, S, S)."""
        self.check_prepared()
        feats = self.stage_features(images)
        text = text_guided_map(feats, self.text_features(), self.logit_scale)
        vision = self.vision_map(self.distances(feats, self.vision_topk)) if self.use_aie else None
        out = {"text": text, "final": self.final_map(vision, text)}
        if vision is not None:
            out["vision"] = vision
        return out

    def forward(self, images: torch.Tensor, categories: Sequence[str]) -> MethodOutput:
        """(B, 3, S, S) -> ``anomaly_map`` (B, S, S) raw ``M^f`` and ``pred_score`` (B,) = its maximum.

        ``categories`` (B names) are not read: the model holds one category's text and prototypes.
        """
        final = self.maps(images)["final"][:, 0]
        return MethodOutput(anomaly_map=final, pred_score=final.flatten(1).amax(dim=1))

    # ------------------------------------------------------------------ training
    def losses(
        self,
        clean: torch.Tensor,
        synthetic: torch.Tensor,
        synthetic_mask: torch.Tensor,
        use_synthetic: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Unweighted ``nfc``, ``afs`` (with AIE) and ``seg`` of one step.

        Args:
            clean: (B, 3, S, S) normal shots (NFC).
            synthetic: (B, 3, S, S) their DAS versions (AFS).
            synthetic_mask: (B, 1, S, S) DAS masks.
            use_synthetic: (B,) bool, which items of the mixed segmentation batch are synthetic
                (PCSNet: each with p = 0.5; the others are clean with an all-zero target).
        """
        self.check_prepared()
        batch = clean.shape[0]
        feats = self.stage_features(torch.cat([clean, synthetic]))
        text = text_guided_map(feats, self.text_features(), self.logit_scale)
        pick = torch.arange(batch, device=clean.device) + batch * use_synthetic.long()
        target = synthetic_mask * use_synthetic.view(-1, 1, 1, 1).to(synthetic_mask.dtype)
        terms: dict[str, torch.Tensor] = {}
        vision = None
        if self.use_aie:
            d = self.distances(feats, max(self.vision_topk, self.hinge_topk))
            hinge = d[..., : self.hinge_topk]
            terms["nfc"] = nfc_loss(hinge[:batch], self.r)
            anomalous = grid_mask(synthetic_mask, self.backbone.grid_size)
            terms["afs"] = afs_loss(hinge[batch:], anomalous, self.r, self.alpha)
            vision = self.vision_map(d)[pick]
        final = self.final_map(vision, text[pick])
        terms["seg"] = F.mse_loss(final, target)
        return terms

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by learning-rate group: ``aie`` (linears, adaptors, r) and ``other`` (ATE, MPF)."""
        aie = [p for p in self.linears.parameters() if p.requires_grad]
        if self.adaptors is not None:
            aie += list(self.adaptors.parameters())
        if isinstance(self.r, nn.Parameter):
            aie.append(self.r)
        seen = {id(p) for p in aie}
        other = [p for p in self.parameters() if p.requires_grad and id(p) not in seen]
        return {"aie": aie, "other": other}
