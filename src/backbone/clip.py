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

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .rehearsal import rehearsal_twin
from .weights import DEFAULT_TAGS, openai_weights, resolve_checkpoint

CONFIG_DIR = Path(__file__).parent / "configs"
_REGISTERED = False

BlockHook = Callable[[int, torch.Tensor], torch.Tensor]


def register_suite_configs() -> None:
    """Make the suite's tiny test configs (``configs/*.json``) known to open_clip."""
    global _REGISTERED
    if not _REGISTERED:
        open_clip.add_model_config(CONFIG_DIR)
        _REGISTERED = True


def available_models() -> list[str]:
    register_suite_configs()
    return open_clip.list_models()


def quick_gelu_required(model_name: str, pretrained: str) -> bool:
    """True when the weights are OpenAI's, which were trained with QuickGELU.

    open_clip's plain names (``ViT-L-14-336``) build ``nn.GELU`` and only warn when given the
    ``openai`` tag, which silently gives wrong features; the ``-quickgelu`` configs are right. A
    checkpoint path is judged by :func:`~src.backbone.weights.openai_weights` (TorchScript archive
    or OpenAI-only architecture: QuickGELU; ambiguous plain state dict: refused).
    """
    return openai_weights(model_name, pretrained)


@dataclass
class TextOutput:
    """Result of :meth:`CLIPBackbone.encode_text_embeddings`.

    Attributes:
        eot: (N, D) projected feature at the end-of-text position (CLIP's text embedding).
        tokens: (N, T, W) all token features after ``ln_final``, not projected.
    """

    eot: torch.Tensor
    tokens: torch.Tensor


class CLIPBackbone(nn.Module):
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
        with _without_open_clip_weight_notice():
            model = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=quick_gelu)
        if checkpoint_path is not None:
            _load_weights(model, checkpoint_path)

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

        self.patch_size = _pair(self.visual.patch_size)[0]
        self.native_size = _pair(self.visual.image_size)[0]
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

    # ------------------------------------------------------------------ vision
    def _interpolated_pos_embed(self, mode: str) -> torch.Tensor:
        """(1 + gh * gw, C) position table for the input size, computed from the stored one."""
        table = self.visual.positional_embedding
        cls_pos, patch_pos = table[:1], table[1:]
        old = int(math.isqrt(patch_pos.shape[0]))
        if (old, old) == self.grid_size:
            return table.detach().clone()
        grid = patch_pos.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()
        kwargs = {"align_corners": False}
        if mode == "bicubic":
            kwargs["antialias"] = True
        grid = F.interpolate(grid, size=self.grid_size, mode=mode, **kwargs)
        patch_pos = grid.permute(0, 2, 3, 1).reshape(-1, table.shape[1]).to(table.dtype)
        return torch.cat([cls_pos, patch_pos], dim=0)

    def pos_embed(self) -> torch.Tensor:
        """(1 + L, C) position table for the input size.

        ``bicubic_once`` computes it once per loaded table (cached on the parameter's identity and
        version, so loading other weights refreshes it); ``bilinear_per_forward`` recomputes it at
        every call as the released FB-CLIP does.
        """
        if self.pos_embed_mode == "bilinear_per_forward":
            return self._interpolated_pos_embed("bilinear")
        table = self.visual.positional_embedding
        key = (table.data_ptr(), table._version, table.device, table.dtype)
        if self._pos_cache is None or self._pos_cache[0] != key:
            self._pos_cache = (key, self._interpolated_pos_embed("bicubic"))
        return self._pos_cache[1]

    def embed_image(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embedding + CLS + position + ``ln_pre``.

        Args:
            images: (B, 3, H, W) CLIP-normalised, H = W = ``image_size``.

        Returns:
            (B, 1 + L, C) tokens entering block 1.
        """
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"Backbone built for {self.image_size}px input got {tuple(images.shape[-2:])}; "
                "set the data and model image_size to the same value."
            )
        visual = self.visual
        x = visual.conv1(images.to(visual.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed().to(x.dtype)
        return visual.ln_pre(x)

    def forward_blocks(
        self,
        x: torch.Tensor,
        layers: Sequence[int],
        before_block: BlockHook | None = None,
        keep_tokens: int | None = None,
    ) -> list[torch.Tensor]:
        """Run the vision blocks and tap the outputs of ``layers`` (1-based block indices).

        Args:
            x: (B, 1 + L, C) from :meth:`embed_image`.
            layers: blocks whose outputs are returned, in the given order.
            before_block: ``hook(i, x) -> x`` called before block ``i`` (1-based); may change the
                sequence length (e.g. append prompt tokens).
            keep_tokens: keep only the first ``keep_tokens`` tokens of each tap (strip prompts);
                default 1 + L.

        Returns:
            One (B, keep_tokens, C) tensor per requested layer, each a copy.
        """
        self._check_layers(layers)
        keep = keep_tokens if keep_tokens is not None else 1 + self.num_patches
        wanted = set(layers)
        taps: dict[int, torch.Tensor] = {}
        blocks = self.visual.transformer.resblocks
        for i in range(1, max(layers) + 1):
            if before_block is not None:
                x = before_block(i, x)
            block = blocks[i - 1]
            # Checked per block: a hook may make the sequence require grad part-way through.
            if self.grad_checkpointing and torch.is_grad_enabled() and x.requires_grad:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
            if i in wanted:
                taps[i] = x[:, :keep].clone()
        return [taps[i] for i in layers]

    def encode_image_layers(
        self,
        images: torch.Tensor,
        layers: Sequence[int],
        before_block: BlockHook | None = None,
        keep_tokens: int | None = None,
    ) -> list[torch.Tensor]:
        """Tokens (CLS first) of the requested blocks in one pass: a list of (B, 1 + L, C).

        Without a hook nothing in the pass can train, so it runs under ``torch.no_grad``.
        """
        if before_block is None:
            with torch.no_grad():
                return self.forward_blocks(self.embed_image(images), layers, None, keep_tokens)
        return self.forward_blocks(self.embed_image(images), layers, before_block, keep_tokens)

    def project(self, tokens: torch.Tensor, ln_post: bool = True) -> torch.Tensor:
        """Map (..., C) vision tokens into the joint space (..., D), optionally through ``ln_post``."""
        if ln_post:
            tokens = self.visual.ln_post(tokens)
        return tokens @ self.visual.proj

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP's global image embedding (B, D): ``ln_post`` + ``proj`` of the last block's CLS."""
        tokens = self.encode_image_layers(images, [self.num_layers])[0]
        return self.project(tokens[:, 0])

    def _check_layers(self, layers: Sequence[int]) -> None:
        bad = [i for i in layers if not 1 <= int(i) <= self.num_layers]
        if not layers or bad:
            raise ValueError(
                f"Layer indices {list(layers)} are outside {self.model_name}'s blocks: valid are "
                f"1..{self.num_layers} (1-based, the output of that block)."
            )

    # ------------------------------------------------------------------ text
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, T) token ids on the backbone's device."""
        return self.tokenizer(list(texts)).to(self.token_embedding.weight.device)

    def encode_text_embeddings(
        self,
        embeddings: torch.Tensor,
        eot_indices: torch.Tensor,
        deep_prompts: Sequence[torch.Tensor] | None = None,
        causal: bool | None = None,
    ) -> TextOutput:
        """Run the text transformer on prompt embeddings.

        Args:
            embeddings: (N, T, W) token embeddings, learnable context vectors already in place.
            eot_indices: (N,) position of the end-of-text token of each prompt.
            deep_prompts: optional per-layer learnable tokens; ``deep_prompts[j]`` of shape (n, W)
                or (N, n, W) replaces tokens ``1..n`` at the input of text layer ``j + 2``
                (AnomalyCLIP's compound prompts).
            causal: override the backbone's ``text_causal_mask`` for this call.

        Returns:
            :class:`TextOutput` with the projected EOT feature (N, D) and the token features
            (N, T, W) after ``ln_final``.
        """
        use_causal = self.text_causal_mask if causal is None else causal
        mask = self.causal_mask if use_causal else None
        x = embeddings + self.text_positional_embedding.to(embeddings.dtype)
        for j, block in enumerate(self.text_transformer.resblocks):
            if deep_prompts is not None and 1 <= j <= len(deep_prompts):
                prompt = deep_prompts[j - 1]
                if prompt.dim() == 2:
                    prompt = prompt.unsqueeze(0).expand(x.shape[0], -1, -1)
                n = prompt.shape[1]
                x = torch.cat([x[:, :1], prompt.to(x.dtype), x[:, 1 + n:]], dim=1)
            x = block(x, attn_mask=mask)
        tokens = self.ln_final(x)
        eot = tokens[torch.arange(tokens.shape[0], device=tokens.device), eot_indices]
        return TextOutput(eot=self._project_text(eot), tokens=tokens)

    def _project_text(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection

    def project_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Apply the text projection to (..., W) features: (..., D)."""
        return self._project_text(tokens)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Frozen CLIP text embeddings (N, D) of plain strings (not normalised)."""
        ids = self.tokenize(texts)
        out = self.encode_text_embeddings(self.token_embedding(ids), ids.argmax(dim=-1))
        return out.eot


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def _load_weights(model: nn.Module, path: str) -> None:
    """Load an open_clip state dict or an OpenAI JIT archive into ``model``."""
    try:
        open_clip.load_checkpoint(model, path)
        return
    except (RuntimeError, ValueError, TypeError, AttributeError) as first_error:
        try:
            state = torch.jit.load(path, map_location="cpu").state_dict()
        except Exception:  # noqa: BLE001 - report the original, more useful error
            raise RuntimeError(f"Could not load CLIP weights from {path}: {first_error}") from first_error
    # Metadata of OpenAI's archive, and the causal mask a scripted open_clip model saves: not weights.
    for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):
        state.pop(key, None)
    model.load_state_dict(state, strict=True)


class _DropWeightNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextlib.contextmanager
def _without_open_clip_weight_notice() -> Iterator[None]:
    """open_clip logs "No pretrained weights loaded" because weights are loaded here, after it; the
    notice is wrong with real weights and a duplicate of the random-init banner without them."""
    notice = _DropWeightNotice()
    root = logging.getLogger()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)
