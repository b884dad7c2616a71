"""AFR-CLIP's three prompts per object and the readable object names they use (spec A10).

Per object ``c``: normal "a photo of a normal c.", abnormal "a photo of a defective c." and
stateless "a photo of a c.". ``prototypes="agnostic"`` uses "object" for every category.
"""

from __future__ import annotations

import re

PROTOTYPES = ("class", "agnostic")
TEMPLATES = ("a photo of a normal {}.", "a photo of a defective {}.", "a photo of a {}.")
#: Row of each prompt in the (3, D) text features of a category.
NORMAL, ABNORMAL, STATELESS = 0, 1, 2

# The spec's map (A10) for names that stripping digits and underscores does not make readable.
# Used only when the shared ``datamodules.names`` is unavailable.
_FALLBACK_NAMES = {
    "pcb": "printed circuit board",
    "chewinggum": "chewing gum",
    "pipe_fryum": "pipe fryum",
    "metal_nut": "metal nut",
    "brainmri": "brain",
    "br35h": "brain",
    "headct": "head",
    "isic": "skin",
    "cvc-colondb": "colon",
    "cvc-clinicdb": "colon",
    "colondb": "colon",
    "clinicdb": "colon",
    "tn3k": "thyroid",
}


def object_name(category: str) -> str:
    """Readable prompt noun of a dataset category (``pcb1`` -> "printed circuit board")."""
    try:
        from datamodules.names import object_name as shared_object_name
    except ImportError:
        shared_object_name = None
    if shared_object_name is not None:
        return shared_object_name(category)
    key = category.strip().lower()
    if key in _FALLBACK_NAMES:
        return _FALLBACK_NAMES[key]
    stripped = re.sub(r"\d+$", "", key)
    return _FALLBACK_NAMES.get(stripped, stripped.replace("_", " ").strip() or key)


def prompts_for(category: str, prototypes: str = "class") -> list[str]:
    """The normal, abnormal and stateless prompt of ``category`` (in that order)."""
    if prototypes not in PROTOTYPES:
        raise ValueError(f"prototypes must be one of {PROTOTYPES}, got {prototypes!r}")
    noun = "object" if prototypes == "agnostic" else object_name(category)
    return [template.format(noun) for template in TEMPLATES]
