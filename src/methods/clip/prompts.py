"""Prompt ensembles of the training-free baseline (WinCLIP-style state x template composition)."""

from __future__ import annotations

NORMAL_STATES = (
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
)
ABNORMAL_STATES = (
    "damaged {}",
    "{} with flaw",
    "{} with defect",
    "{} with damage",
)
TEMPLATES = (
    "a photo of a {}.",
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a blurry photo of the {}.",
    "a low resolution photo of a {}.",
    "a good photo of the {}.",
    "there is a {} in the scene.",
    "this is a {} in the scene.",
)


def prompt_ensemble(object_name: str, states: tuple[str, ...]) -> list[str]:
    """Every template filled with every state of ``object_name``."""
    return [template.format(state.format(object_name)) for state in states for template in TEMPLATES]
