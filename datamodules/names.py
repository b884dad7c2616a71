"""Readable object names for text prompts ("a photo of a damaged {name}.").

Table (AFR-CLIP's naming, extended to the built-in benchmark): VisA ``pcb1``..``pcb4`` ->
"printed circuit board", ``macaroni1/2`` -> "macaroni", ``chewinggum`` -> "chewing gum",
``pipe_fryum`` -> "pipe fryum"; medical sets -> "brain", "head", "skin", "colon", "thyroid";
built-in photos -> the noun a caption would use (``chelsea`` -> "cat", ``astronaut`` ->
"person", ``immunohistochemistry`` -> "tissue", ...). Any other name: digits dropped,
underscores/hyphens -> spaces (``metal_nut`` -> "metal nut").

Public API: ``OBJECT_NAMES``, ``object_name``.
"""

from __future__ import annotations

import re

OBJECT_NAMES: dict[str, str] = {
    # VisA
    "pcb1": "printed circuit board",
    "pcb2": "printed circuit board",
    "pcb3": "printed circuit board",
    "pcb4": "printed circuit board",
    "macaroni1": "macaroni",
    "macaroni2": "macaroni",
    "chewinggum": "chewing gum",
    "pipe_fryum": "pipe fryum",
    # medical benchmarks (folder names used by AnomalyCLIP/AdaCLIP)
    "brainmri": "brain",
    "br35h": "brain",
    "brats": "brain",
    "headct": "head",
    "isic": "skin",
    "clinicdb": "colon",
    "colondb": "colon",
    "kvasir": "colon",
    "endo": "colon",
    "tn3k": "thyroid",
    # built-in benchmark
    "brick": "brick wall",
    "gravel": "gravel",
    "coins": "coins",
    "chelsea": "cat",
    "retina": "retina",
    "grass": "grass",
    "coffee": "coffee cup",
    "astronaut": "person",
    "immunohistochemistry": "tissue",
    "cell": "cell",
}


def object_name(category: str) -> str:
    """Prompt noun for a dataset category, e.g. ``"metal_nut"`` -> ``"metal nut"``."""
    key = category.strip().lower()
    if key in OBJECT_NAMES:
        return OBJECT_NAMES[key]
    words = re.sub(r"[\d_\-]+", " ", key).split()
    return " ".join(words) if words else "object"
