"""Object-agnostic learnable prompts ("X x n object without defect." / "... with defect.").

The released prompt learner keeps two sets of ``n_ctx`` learnable context vectors, one for the
normal and one for the abnormal prompt, and splices them after the start-of-text token of the
tokenised template. Everything else in the prompt (SOT, the words, EOT, padding) stays the frozen
CLIP token embedding.

Shapes: ``n`` context tokens, ``T`` context length (77), ``W`` text width.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from src.seeding import module_seed

#: The released templates (``prompt_ensemble.py``) and the paper's wording ([V] object / [W] damaged object).
WORDINGS: dict[str, tuple[str, str]] = {
    "released": ("object without defect.", "object with defect."),
    "paper": ("object.", "damaged object."),
}


class PromptLearner(nn.Module):
    """Two learnable prompts, row 0 normal and row 1 abnormal.

    Args:
        backbone: the frozen :class:`~src.backbone.CLIPBackbone` (its tokenizer and token embedding).
        n_ctx: learnable context vectors per prompt (12 in the release).
        wording: ``released`` ("object without defect." / "object with defect.") or ``paper``.
        deep_prompt_depth: ``0`` (release: its compound prompts are built but never injected) or
            the AnomalyCLIP depth ``d``: ``d - 1`` sets of ``deep_prompt_length`` learnable tokens
            that replace the tokens after SOT at the input of text layers ``2..d``.
        deep_prompt_length: tokens per deep prompt.
    """

    def __init__(
        self,
        backbone: nn.Module,
        n_ctx: int = 12,
        wording: str = "released",
        deep_prompt_depth: int = 0,
        deep_prompt_length: int = 4,
    ) -> None:
        super().__init__()
        if wording not in WORDINGS:
            raise ValueError(f"prompt_wording={wording!r} is not known; valid: {sorted(WORDINGS)}")
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
        text_layers = len(backbone.text_transformer.resblocks)
        if deep_prompt_depth < 0 or deep_prompt_depth == 1:
            raise ValueError(f"deep_prompt_depth={deep_prompt_depth} must be 0 (off) or >= 2")
        if deep_prompt_depth > text_layers:
            # Lets the paper-reading ablation row (depth 9 for ViT-L's 12 text layers) run on the
            # quick profile's small text encoders.
            warnings.warn(
                f"deep_prompt_depth={deep_prompt_depth} exceeds the {text_layers} text layers of "
                f"{backbone.model_name}; using {text_layers}",
                stacklevel=2,
            )
            deep_prompt_depth = text_layers
        width = backbone.text_width
        self.n_ctx = n_ctx
        self.wording = wording
        self.ctx_normal = nn.Parameter(torch.empty(n_ctx, width).normal_(std=0.02))
        self.ctx_abnormal = nn.Parameter(torch.empty(n_ctx, width).normal_(std=0.02))
        with module_seed("fb.prompt.deep"):  # n_ctx does not shift the deep prompts' start, nor they the rest
            self.deep_prompts = nn.ParameterList(
                nn.Parameter(torch.empty(deep_prompt_length, width).normal_(std=0.02))
                for _ in range(max(deep_prompt_depth - 1, 0))
            )

        prefix = " ".join(["X"] * n_ctx)
        texts = [f"{prefix} {words}" for words in WORDINGS[wording]]
        ids = backbone.tokenize(texts).cpu()
        with torch.no_grad():
            embedding = backbone.token_embedding(ids.to(backbone.token_embedding.weight.device)).float().cpu()
        # Frozen parts of the prompts; rebuilt from CLIP, so not part of the state dict.
        self.register_buffer("token_prefix", embedding[:, :1].clone(), persistent=False)
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:].clone(), persistent=False)
        self.register_buffer("token_ids", ids, persistent=False)

    @property
    def eot_indices(self) -> torch.Tensor:
        """(2,) end-of-text positions (the EOT id is the largest in CLIP's vocabulary)."""
        return self.token_ids.argmax(dim=-1)

    def forward(self) -> torch.Tensor:
        """(2, T, W) prompt embeddings, row 0 normal, row 1 abnormal."""
        ctx = torch.stack([self.ctx_normal, self.ctx_abnormal]).to(self.token_prefix.dtype)
        return torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)
