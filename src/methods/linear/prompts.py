"""APRIL-GAN's prompt ensemble: 7 normal and 5 abnormal state phrases, each in 35 templates.

The two text embeddings of a category are the renormalised means of the L2-normalised frozen
CLIP embeddings of its sentences (APRIL-GAN's ``encode_text_with_prompt_ensemble``).
"""

from __future__ import annotations

NORMAL_STATES = (
    "{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect", "{} without damage",
)
ABNORMAL_STATES = ("damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage")

#: CLIP's ImageNet templates as APRIL-GAN lists them, plus its five scene sentences.
TEMPLATES = (
    "a bad photo of a {}.", "a low resolution photo of the {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a bright photo of a {}.", "a dark photo of the {}.", "a photo of my {}.",
    "a photo of the cool {}.", "a close-up photo of a {}.", "a black and white photo of the {}.",
    "a bright photo of the {}.", "a cropped photo of a {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a photo of one {}.",
    "a close-up photo of the {}.", "a photo of a {}.", "a low resolution photo of a {}.", "a photo of a large {}.",
    "a blurry photo of a {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.",
    "a photo of the small {}.", "a photo of the large {}.", "a black and white photo of a {}.",
    "a dark photo of a {}.", "a photo of a cool {}.", "a photo of a small {}.", "there is a {} in the scene.",
    "there is the {} in the scene.", "this is a {} in the scene.", "this is the {} in the scene.",
    "this is one {} in the scene.",
)


def state_prompts(object_name: str) -> tuple[list[str], list[str]]:
    """(normal sentences, abnormal sentences) for ``object_name``: 7 x 35 and 5 x 35."""
    normal = [t.format(s.format(object_name)) for s in NORMAL_STATES for t in TEMPLATES]
    abnormal = [t.format(s.format(object_name)) for s in ABNORMAL_STATES for t in TEMPLATES]
    return normal, abnormal
