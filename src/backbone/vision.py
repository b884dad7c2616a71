"""The vision half of :class:`~src.backbone.clip.CLIPBackbone`: position table, layer taps, block hooks.

Any input size, with the patch position embeddings interpolated *without touching the loaded
parameter*, either once at load (bicubic, as open_clip's ``force_image_size``) or from the stored
table at every forward (bilinear, as the released FB-CLIP does); the tokens of several blocks in
one pass, each a *copy*; a hook before each block so a method can insert or refresh prompt tokens.

Shapes: ``B`` images, ``L = gh * gw`` patch tokens, ``C`` vision width, ``D`` joint width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

BlockHook = Callable[[int, torch.Tensor], torch.Tensor]


class VisionTower:
    """Methods of :class:`~src.backbone.clip.CLIPBackbone` that run the vision transformer.

    Reads the attributes the backbone sets up: ``visual`` (open_clip's vision tower),
    ``image_size``, ``grid_size``, ``num_patches``, ``num_layers``, ``pos_embed_mode``,
    ``grad_checkpointing``, ``model_name`` and the ``_pos_cache`` slot.
    """

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
