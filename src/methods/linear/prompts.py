"""APRIL-GAN's prompt ensemble: 7 normal and 5 abnormal state phrases, each in 35 templates.

The two text embeddings of a category are the renormalised means of the L2-normalised frozen
CLIP embeddings of its sentences (APRIL-GAN's ``encode_text_with_prompt_ensemble``).
"""

from __future__ import annotations

from src.april_gan_prompts import ABNORMAL_STATES, NORMAL_STATES, TEMPLATES

__all__ = ["ABNORMAL_STATES", "NORMAL_STATES", "TEMPLATES", "state_prompts"]

def state_prompts(object_name: str) -> tuple[list[str], list[str]]:
    """(normal sentences, abnormal sentences) for ``object_name``: 7 x 35 and 5 x 35."""
    normal = [t.format(s.format(object_name)) for s in NORMAL_STATES for t in TEMPLATES]
    abnormal = [t.format(s.format(object_name)) for s in ABNORMAL_STATES for t in TEMPLATES]
    return normal, abnormal
