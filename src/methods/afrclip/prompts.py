"""AFR-CLIP's three prompts per object (README A10).

Per object ``c``: normal "a photo of a normal c.", abnormal "a photo of a defective c." and
stateless "a photo of a c.". ``c`` is the readable noun of the shared name table
(``datamodules.names``: ``pcb1`` -> "printed circuit board", ``metal_nut`` -> "metal nut", medical
sets -> "brain", "skin", ...). ``prototypes="agnostic"`` uses "object" for every category.
"""

from __future__ import annotations

from datamodules.names import object_name

PROTOTYPES = ("class", "agnostic")
TEMPLATES = ("a photo of a normal {}.", "a photo of a defective {}.", "a photo of a {}.")
#: Row of each prompt in the (3, D) text features of a category.
NORMAL, ABNORMAL, STATELESS = 0, 1, 2

__all__ = ["ABNORMAL", "NORMAL", "PROTOTYPES", "STATELESS", "TEMPLATES", "object_name", "prompts_for"]


def prompts_for(category: str, prototypes: str = "class") -> list[str]:
    """The normal, abnormal and stateless prompt of ``category`` (in that order)."""
    if prototypes not in PROTOTYPES:
        raise ValueError(f"prototypes must be one of {PROTOTYPES}, got {prototypes!r}")
    noun = "object" if prototypes == "agnostic" else object_name(category)
    return [template.format(noun) for template in TEMPLATES]
