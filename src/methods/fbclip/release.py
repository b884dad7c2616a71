"""Loading the authors' released FB-CLIP checkpoint into our model.

The release (``cross_domain_test.py``) saves ``{"prompt_learner": state_dict, "model_trainable_params":
{name: tensor}, "epoch", "loss", "source_domain"}``. The names below were read from the public
repository (``Xi-Mu-Yu/FB-CLIP``: ``prompt_ensemble.FBCLIP_PromptLearner`` and
``FBCLIP_lib/FBCLIP.py``: ``FB_params``, ``FB_Attention``).

Release name -> our name (in :class:`~src.methods.fbclip.torch_model.FBCLIPModel`):

======================================================  ==========================================
``prompt_learner.ctx_pos`` (1, 1, n, W)                  ``prompt.ctx_normal`` (n, W)
``prompt_learner.ctx_neg`` (1, 1, n, W)                  ``prompt.ctx_abnormal`` (n, W)
``fb_Attention.{fg,bg}_norm.{weight,bias}``              ``fb_attention.{fg,bg}.norm.*``
``fb_Attention.{fg,bg}_to_{q,k,v}.weight``               ``fb_attention.{fg,bg}.to_{q,k,v}.weight``
``fb_Attention.{fg,bg}_to_out.0.{weight,bias}``          ``fb_attention.{fg,bg}.to_out.*``
``fb_Attention.{fg,bg}_scale``                           ``fb_attention.{fg,bg}.scale``
``fb_Attention.gate.{0,2}.{weight,bias}``                ``fb_attention.gate.{0,2}.*``
``fb_Attention.norm.{weight,bias}``                      ``fb_attention.norm.*``
``token_selector.{0,2}.{weight,bias}``                   ``text_fusion.selector.{0,2}.*``
``text_projection_mlp.{0,2}.{weight,bias}``              ``text_fusion.mlp.{0,2}.*``
``scale_weights`` (6,)                                   ``layer_weights``
======================================================  ==========================================

Ignored, because the release never uses them in its forward pass: ``compound_prompts_text.*``
and ``compound_prompt_projections.*`` (deep prompts built but not injected), ``layer_selector``,
``fusion_weights``, ``gate_network.*``, ``fusion_weight``; and the frozen prompt buffers
``token_prefix_*``, ``token_suffix_*``, ``tokenized_prompts_*`` (we rebuild them from CLIP).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

#: Release parameters that exist in its checkpoints but never reach the output.
DEAD_PREFIXES = (
    "compound_prompts_text.",
    "compound_prompt_projections.",
    "layer_selector",
    "fusion_weights",
    "gate_network.",
    "fusion_weight",
)
#: Frozen buffers of the release's prompt learner (rebuilt from the CLIP vocabulary here).
BUFFER_PREFIXES = ("token_prefix_", "token_suffix_", "tokenized_prompts_")

_FB = re.compile(r"^fb_Attention\.(fg|bg)_(norm|to_q|to_k|to_v|to_out\.0|scale)(\..+)?$")


def map_release_name(name: str, source: str) -> str | None:
    """Our parameter name for a release name, ``None`` for a dead one.

    Args:
        name: release state-dict key.
        source: ``prompt_learner`` or ``model`` (which of the two saved dicts it comes from).

    Raises:
        KeyError: a name the release does not have (a wrong or different checkpoint).
    """
    if name.startswith(DEAD_PREFIXES) or name.startswith(BUFFER_PREFIXES):
        return None
    if source == "prompt_learner":
        if name == "ctx_pos":
            return "prompt.ctx_normal"
        if name == "ctx_neg":
            return "prompt.ctx_abnormal"
    else:
        match = _FB.match(name)
        if match:
            branch, part, rest = match.group(1), match.group(2), match.group(3) or ""
            part = "to_out" if part == "to_out.0" else part
            return f"fb_attention.{branch}.{part}{rest}"
        if name.startswith(("fb_Attention.gate.", "fb_Attention.norm.")):
            return "fb_attention." + name[len("fb_Attention."):]
        if name.startswith("token_selector."):
            return "text_fusion.selector." + name[len("token_selector."):]
        if name.startswith("text_projection_mlp."):
            return "text_fusion.mlp." + name[len("text_projection_mlp."):]
        if name == "scale_weights":
            return "layer_weights"
    raise KeyError(f"{source}: {name!r} is not a parameter of the released FB-CLIP")


def convert_release_state(checkpoint: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Translate a release checkpoint dict into our state-dict names.

    Returns:
        (state dict with our names, list of ignored release names).
    """
    for key in ("prompt_learner", "model_trainable_params"):
        if key not in checkpoint:
            raise KeyError(
                f"release checkpoint has no {key!r} entry (found {sorted(checkpoint)}); expected the "
                "dict saved by the release's cross_domain_test.py"
            )
    state: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for source, tensors in (("prompt_learner", checkpoint["prompt_learner"]),
                            ("model", checkpoint["model_trainable_params"])):
        for name, value in tensors.items():
            ours = map_release_name(name, source)
            if ours is None:
                ignored.append(f"{source}.{name}")
                continue
            if ours.startswith("prompt.ctx_"):
                value = value.reshape(-1, value.shape[-1])  # (1, 1, n, W) -> (n, W)
            state[ours] = value
    return state, ignored


def read_release_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` the release file on CPU without running arbitrary pickled code.

    The release stores its mean loss as a numpy float64; those numpy types are allow-listed. The
    authors saved under numpy 1.x, whose pickles name the scalar constructor
    ``numpy.core.multiarray.scalar``; numpy 2 names it ``numpy._core.multiarray.scalar``. Both names
    are allowed and map to the installed numpy's function.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"release_checkpoint={str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - retry with numpy scalars allowed
        import numpy as np

        core = getattr(np, "_core", None) or np.core
        scalar = core.multiarray.scalar
        allowed: list[Any] = [np.dtype, np.float64, type(np.dtype(np.float64)), scalar]
        # (function, pickled name): the same function under the other numpy major's module path.
        allowed += [(scalar, f"{module}.multiarray.scalar") for module in ("numpy.core", "numpy._core")]
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            raise RuntimeError(f"could not read release checkpoint {path}: {first}") from first


def load_release_checkpoint(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Load a release checkpoint into ``model`` (an ``FBCLIPModel``); returns the ignored names.

    Every trainable parameter of ``model`` must be provided, with the same shape.
    """
    state, ignored = convert_release_state(read_release_checkpoint(path))
    own = dict(model.named_parameters())
    for name, value in state.items():
        if name not in own:
            raise KeyError(f"release parameter maps to {name!r}, which this model does not have")
        if own[name].shape != value.shape:
            raise ValueError(
                f"release parameter for {name!r} has shape {tuple(value.shape)}, this model expects "
                f"{tuple(own[name].shape)} (check backbone, n_ctx and layers against the release)"
            )
    missing = [n for n, p in own.items() if p.requires_grad and n not in state]
    if missing:
        raise KeyError(f"release checkpoint {path} lacks trainable parameters {missing}")
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value)
    if ignored:
        warnings.warn(
            f"release checkpoint {path}: ignored {len(ignored)} entries that the release never uses "
            f"in its forward pass (dead parameters and frozen prompt buffers): {ignored}",
            stacklevel=2,
        )
    return ignored
