"""Width-shrunk twins of the paper backbones, for rehearsing paper runs on a CPU (``make rehearse``).

With ``ADSUITE_REHEARSAL=1`` in the environment, :class:`~src.backbone.clip.CLIPBackbone` builds the
twin of the requested architecture instead: same family, depth, patch size, native input size,
token grid, tapped blocks and activation, but vision and text width 64 (4 heads of 16), random
weights. Nothing else changes, so every other setting of a paper run (input size, layers,
prompts, losses, optimiser, data) is exercised as it is resolved for real. The substitution is
recorded in the results (``backbone`` is the twin's name, ``shrunk_from`` the requested one,
``random_init`` true) and announced on stderr; without the variable nothing happens.

Public API: ``REHEARSAL_ENV``, ``TWINS``, ``rehearsal_active``, ``rehearsal_twin``.
"""

from __future__ import annotations

import os
import sys

REHEARSAL_ENV = "ADSUITE_REHEARSAL"

# paper architecture -> twin config in configs/ (the joint embedding width is kept, so every
# method-side layer that reads it has its real shape; only the towers are narrow).
TWINS: dict[str, str] = {
    "ViT-L-14-336-quickgelu": "rehearse-L-14-336-quickgelu",
    "ViT-L-14-336": "rehearse-L-14-336",
    "ViT-B-16-plus-240": "rehearse-B-16-plus-240",
}


def rehearsal_active() -> bool:
    """True when the environment asks for the shrunk twins (``ADSUITE_REHEARSAL`` set and not ``0``)."""
    return os.environ.get(REHEARSAL_ENV, "").strip() not in {"", "0"}


def rehearsal_twin(model_name: str) -> str | None:
    """The twin to build instead of ``model_name``, or None outside a rehearsal.

    Raises:
        ValueError: in a rehearsal, for an architecture that has no twin (a paper config naming a
            backbone the rehearsal does not know must stop, not silently run at full width).
    """
    if not rehearsal_active():
        return None
    if model_name in TWINS.values():
        return model_name
    if model_name not in TWINS:
        raise ValueError(
            f"{REHEARSAL_ENV} is set but backbone {model_name!r} has no width-shrunk twin; "
            f"known: {sorted(TWINS)} (add a config to src/backbone/configs and to TWINS)"
        )
    twin = TWINS[model_name]
    print(f"REHEARSAL: backbone {model_name} replaced by its width-64 twin {twin} (random-init)", file=sys.stderr)
    return twin
