"""The text half of :class:`~src.backbone.clip.CLIPBackbone`: a text encoder that takes prompt embeddings.

Learnable context vectors, optional deep per-layer prompt tokens and an optional causal mask; it
returns both the EOT feature and all token features.

Shapes: ``N`` prompts, ``T`` context length (77), ``W`` text width, ``D`` joint width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TextOutput:
    """Result of :meth:`CLIPBackbone.encode_text_embeddings`.

    Attributes:
        eot: (N, D) projected feature at the end-of-text position (CLIP's text embedding).
        tokens: (N, T, W) all token features after ``ln_final``, not projected.
    """

    eot: torch.Tensor
    tokens: torch.Tensor


class TextTower:
    """Methods of :class:`~src.backbone.clip.CLIPBackbone` that run the text transformer.

    Reads the attributes the backbone sets up: ``tokenizer``, ``token_embedding``,
    ``text_positional_embedding``, ``text_transformer``, ``ln_final``, ``text_projection``,
    ``causal_mask`` and ``text_causal_mask``.
    """

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
