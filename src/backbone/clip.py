"""One frozen open_clip wrapper for every method.

What the methods need and open_clip does not give in one call:

* any input size, with the patch position embeddings interpolated *without touching the loaded
  parameter* (AnomalyCLIP overwrote it in place on first use), either once at load (bicubic, as
  open_clip's ``force_image_size``) or from the stored table at every forward (bilinear, as the
  released FB-CLIP does);
* the tokens of several intermediate blocks in one pass, each a *copy* (a public code base
  returned the last block's tokens for every tap for two years);
* a hook before each block, so a method can insert or refresh prompt tokens (AFR-CLIP's SP);
* a text encoder that takes prompt *embeddings* (learnable context vectors), optional deep
  per-layer prompt tokens and an optional causal mask, and returns both the EOT feature and all
  token features.

Shapes: ``B`` images, ``L = gh * gw`` patch tokens, ``C`` vision width, ``D`` joint embedding
width, ``N`` prompts, ``T`` context length (77), ``W`` text width.
"""

from __future__ import annotations

import open_clip
import torch
from torch import nn

from .loading import (
    available_models,
    load_weights,
    pair,
    quick_gelu_required,
    register_suite_configs,
    without_open_clip_weight_notice,
)
from .rehearsal import rehearsal_twin
from .text import TextOutput, TextTower
from .vision import BlockHook, VisionTower
from .weights import DEFAULT_TAGS, resolve_checkpoint

__all__ = ["BlockHook", "CLIPBackbone", "TextOutput", "available_models", "quick_gelu_required",
           "register_suite_configs"]


class CLIPBackbone(VisionTower, TextTower, nn.Module):
    """Frozen open_clip model with layer taps, prompt hooks and a prompt-able text encoder.

    Args:
        model_name: open_clip architecture, e.g. ``ViT-L-14-336-quickgelu``, ``ViT-B-16``,
            ``ViT-B-16-plus-240``, or the suite's ``tiny-vit`` for tests.
        pretrained: ``openai`` | another open_clip tag | a checkpoint path | ``none`` | ``auto``.
        image_size: input side in pixels; must be a multiple of the patch size. ``None`` keeps the
            model's native size.
        pos_embed_mode: ``bicubic_once`` (resize the table once at load, open_clip's behaviour) or
            ``bilinear_per_forward`` (resize the stored table at every forward, FB-CLIP's).
        text_causal_mask: apply CLIP's causal mask in the text transformer (the released FB-CLIP
            runs without it).
        grad_checkpointing: recompute vision blocks in backward when gradients flow through them
            (AFR-CLIP's SP), trading compute for activation memory.
        weights_cache_dir: where open_clip looks for cached checkpoints.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-16",
        pretrained: str = "auto",
        image_size: int | None = None,
        pos_embed_mode: str = "bicubic_once",
        text_causal_mask: bool = True,
        grad_checkpointing: bool = False,
        weights_cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        register_suite_configs()
        if model_name not in open_clip.list_models():
            raise ValueError(
                f"Unknown backbone {model_name!r}. Valid open_clip names include "
                f"{sorted(set(DEFAULT_TAGS) | {'tiny-vit', 'small-vit'})} (all: open_clip.list_models())."
            )
        if pos_embed_mode not in {"bicubic_once", "bilinear_per_forward"}:
            raise ValueError(
                f"pos_embed_mode must be 'bicubic_once' or 'bilinear_per_forward', got {pos_embed_mode!r}"
            )
        # The activation follows the requested weights, also when a rehearsal swaps in the twin.
        quick_gelu = quick_gelu_required(model_name, pretrained)
        self.shrunk_from: str | None = None
        twin = rehearsal_twin(model_name)
        if twin is not None and twin != model_name:
            self.shrunk_from, model_name, pretrained = model_name, twin, "none"
        checkpoint_path = resolve_checkpoint(model_name, pretrained, weights_cache_dir)
        with without_open_clip_weight_notice():
            model = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=quick_gelu)
        if checkpoint_path is not None:
            load_weights(model, checkpoint_path)

        self.model_name = model_name
        self.pretrained = pretrained
        self.checkpoint_path = checkpoint_path
        self.random_init = checkpoint_path is None
        self.pos_embed_mode = pos_embed_mode
        self.text_causal_mask = text_causal_mask
        self.grad_checkpointing = grad_checkpointing

        self.visual = model.visual
        self.token_embedding = model.token_embedding
        self.text_positional_embedding = model.positional_embedding
        self.text_transformer = model.transformer
        self.ln_final = model.ln_final
        self.text_projection = model.text_projection
        self.register_buffer("causal_mask", model.attn_mask, persistent=False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.context_length = int(model.context_length)

        self.patch_size = pair(self.visual.patch_size)[0]
        self.native_size = pair(self.visual.image_size)[0]
        self.image_size = int(image_size or self.native_size)
        if self.image_size % self.patch_size:
            valid = [self.patch_size * k for k in range(max(1, self.image_size // self.patch_size - 2),
                                                         self.image_size // self.patch_size + 3)]
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of {model_name}'s patch size "
                f"{self.patch_size}; nearby valid sizes: {valid}"
            )
        self.grid_size = (self.image_size // self.patch_size,) * 2
        self.width = int(self.visual.conv1.out_channels)
        self.embed_dim = int(self.visual.proj.shape[1])
        self.text_width = int(self.token_embedding.weight.shape[1])
        self.num_layers = len(self.visual.transformer.resblocks)

        for param in self.parameters():
            param.requires_grad_(False)
        self.eval()
        self._pos_cache: tuple[tuple, torch.Tensor] | None = None

    # ------------------------------------------------------------------ housekeeping
    def train(self, mode: bool = True) -> CLIPBackbone:
        """The backbone is frozen: it stays in eval mode whatever the parent module does."""
        return super().train(False)

    @property
    def num_patches(self) -> int:
        """Patch tokens per image, ``L = gh * gw``."""
        return self.grid_size[0] * self.grid_size[1]

    def describe(self) -> dict:
        """What a results file needs to name the frozen backbone (it is never stored)."""
        return {
            "backbone": self.model_name,
            "pretrained": self.pretrained,
            "checkpoint": self.checkpoint_path,
            "random_init": self.random_init,
            "image_size": self.image_size,
            "pos_embed_mode": self.pos_embed_mode,
            "activation": type(self.visual.transformer.resblocks[0].mlp.gelu).__name__,
            "shrunk_from": self.shrunk_from,
            "width": self.width,
        }
