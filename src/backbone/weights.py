"""Resolve CLIP weights offline-first.

``pretrained`` accepts ``openai`` or any other open_clip tag, a path to a local checkpoint,
``none`` (random init) or ``auto`` (real weights when they can be had, random init otherwise).
A tag that is not in the local cache must fail within seconds when the network is unreachable:
open_clip would otherwise spend a minute in download retries before failing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import warnings
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import open_clip
from open_clip import pretrained as oc_pretrained

#: The tag ``auto`` tries for the model names the papers use.
DEFAULT_TAGS = {
    "ViT-L-14-336-quickgelu": "openai",
    "ViT-L-14-336": "openai",
    "ViT-L-14-quickgelu": "openai",
    "ViT-L-14": "openai",
    "ViT-B-16-quickgelu": "openai",
    "ViT-B-16": "openai",
    "ViT-B-32": "openai",
    "ViT-B-16-plus-240": "laion400m_e31",
}

DOWNLOAD_TIMEOUT_S = 4.0


class WeightsUnavailableError(RuntimeError):
    """The requested pretrained weights are neither cached nor downloadable."""


def _how_to_fix(model_name: str, tag: str) -> str:
    return (
        f"Pretrained weights '{tag}' for {model_name} are not in the local cache and cannot be "
        f"downloaded (offline?). Either copy the checkpoint to this machine and pass its path, e.g. "
        f"`--model.init_args.pretrained=/path/to/{model_name}.pt` (any open_clip state dict or the "
        f"OpenAI JIT archive), or point open_clip's cache at a folder that holds it "
        f"(`--model.init_args.weights_cache_dir=...`, HF_HOME). To run on random weights "
        f"instead, pass `--model.init_args.pretrained=none` (or `auto`; results are then labelled random-init)."
    )


def offline_requested() -> bool:
    """True when the environment says not to touch the network at all."""
    flags = ("HF_HUB_OFFLINE", "ADSUITE_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(f, "").strip().lower() in {"1", "true", "yes"} for f in flags)


def cached_checkpoint(model_name: str, tag: str, cache_dir: str | None = None) -> str | None:
    """Path of the cached checkpoint for ``(model_name, tag)``, or None when it is not cached."""
    cfg = oc_pretrained.get_pretrained_cfg(model_name, tag)
    if not cfg:
        return None
    if "file" in cfg:
        return cfg["file"] if Path(cfg["file"]).is_file() else None
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub ships with open_clip
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            model_id, filename = os.path.split(hub)
            filename = filename or "open_clip_pytorch_model.bin"
            hit = try_to_load_from_cache(model_id, filename, cache_dir=cache_dir)
            if isinstance(hit, str) and Path(hit).is_file():
                return hit
    url = cfg.get("url", "")
    if url:
        folder = Path(cache_dir or os.path.expanduser("~/.cache/clip"))
        candidate = folder / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None


def _download_with_timeout(model_name: str, tag: str, cache_dir: str | None) -> str:
    cfg = oc_pretrained.get_pretrained_cfg(model_name, tag)
    host = urlparse(cfg["url"]).hostname if cfg.get("url") and not cfg.get("hf_hub") else "huggingface.co"
    try:
        # A failed name lookup answers at once offline; without this check huggingface_hub would
        # spend several seconds in retries before giving up.
        socket.getaddrinfo(host, 443)
    except OSError as err:
        raise WeightsUnavailableError(_how_to_fix(model_name, tag)) from err
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["path"] = oc_pretrained.download_pretrained(cfg, cache_dir=cache_dir)
        except Exception as err:  # noqa: BLE001 - any failure means "unavailable"
            result["error"] = err

    # A daemon thread: if the download hangs in retries we stop waiting and the thread dies with
    # the process instead of blocking the run for a minute.
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DOWNLOAD_TIMEOUT_S)
    hub_logger.setLevel(level)
    path = result.get("path")
    if thread.is_alive() or not path or not Path(str(path)).is_file():
        raise WeightsUnavailableError(_how_to_fix(model_name, tag))
    return str(path)


def resolve_checkpoint(model_name: str, pretrained: str, cache_dir: str | None = None) -> str | None:
    """Return a local checkpoint path for ``pretrained``, or None for random init.

    Raises:
        WeightsUnavailableError: a tag that is neither cached nor downloadable (quickly), or a
            checkpoint path that does not exist.
        ValueError: an unknown tag for this model.
    """
    choice = pretrained.strip()
    if choice.lower() == "none":
        return None
    if choice.lower() == "auto":
        tag = default_tag(model_name)
        if tag is None:
            warn_random_init(model_name, f"open_clip has no pretrained tag for {model_name}")
            return None
        try:
            return resolve_checkpoint(model_name, tag, cache_dir)
        except WeightsUnavailableError:
            warn_random_init(model_name, f"weights '{tag}' are not available offline")
            return None
    if is_checkpoint_path(choice):
        if not Path(choice).is_file():
            raise WeightsUnavailableError(f"Checkpoint file not found: {choice} (pretrained={pretrained!r}).")
        return choice
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if choice not in tags:
        raise ValueError(
            f"Unknown pretrained tag {choice!r} for {model_name}. Valid: {sorted(tags) or '(none)'}, "
            "a checkpoint path, 'none' or 'auto'."
        )
    hit = cached_checkpoint(model_name, choice, cache_dir)
    if hit is not None:
        return hit
    if offline_requested():
        raise WeightsUnavailableError(_how_to_fix(model_name, choice))
    return _download_with_timeout(model_name, choice, cache_dir)


def is_checkpoint_path(pretrained: str) -> bool:
    """True when ``pretrained`` names a file rather than a tag, ``none`` or ``auto``."""
    choice = pretrained.strip()
    return os.sep in choice or choice.endswith((".pt", ".pth", ".bin", ".safetensors"))


def is_torchscript_archive(path: str) -> bool:
    """True for a TorchScript archive (the format OpenAI released its CLIP weights in).

    ``torch.save`` also writes zip files, but only TorchScript puts compiled code and a
    ``constants.pkl`` next to the tensors.
    """
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def openai_weights(model_name: str, pretrained: str) -> bool:
    """Whether the weights ``pretrained`` names are OpenAI's (trained with QuickGELU).

    A tag says it (``openai``, or ``auto`` for a name whose default tag is ``openai``). A
    checkpoint path is decided from the file and the architecture: a TorchScript archive is
    OpenAI's release format, and an architecture whose only published weights are OpenAI's
    (``ViT-L-14-336``) can hold nothing else. A plain state dict for an architecture with both
    OpenAI and GELU-trained weights (``ViT-B-16``) cannot be told apart, and guessing changes every
    feature silently, so it is refused.

    Raises:
        ValueError: the ambiguous case, naming the two ways out.
    """
    choice = pretrained.strip()
    if choice.lower() == "openai":
        return True
    if choice.lower() == "auto":
        return DEFAULT_TAGS.get(model_name) == "openai"
    if not is_checkpoint_path(choice) or not Path(choice).is_file():
        return False
    if model_name.endswith("-quickgelu"):
        return True
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if "openai" not in tags:
        return False  # no OpenAI weights exist for this architecture: keep its own activation
    if is_torchscript_archive(choice) or set(tags) == {"openai"}:
        return True
    quick = f"{model_name}-quickgelu"
    hint = f"`{quick}`" if quick in open_clip.list_models() else "a `-quickgelu` model name"
    raise ValueError(
        f"pretrained={choice!r} with backbone {model_name!r} is ambiguous: {model_name} has OpenAI "
        f"weights (trained with QuickGELU) and GELU-trained ones ({', '.join(t for t in tags if t != 'openai')[:80]}), "
        f"and a state-dict file does not say which it holds. For OpenAI weights use backbone {hint}; "
        f"for the others pass their tag (pretrained=<tag>) with weights_cache_dir pointing at the cached file."
    )


def default_tag(model_name: str) -> str | None:
    """The tag ``auto`` tries: the papers' choice, else the first tag open_clip knows."""
    if model_name in DEFAULT_TAGS:
        return DEFAULT_TAGS[model_name]
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    return tags[0] if tags else None


def warn_random_init(model_name: str, why: str) -> None:
    """Warn loudly that ``model_name`` runs on random weights, and why."""
    bar = "!" * 78
    warnings.warn(
        f"\n{bar}\nRANDOM-INIT BACKBONE: {model_name} runs on random weights ({why}).\n"
        f"Every metric of this run is tagged 'random-init' and means nothing about the method.\n{bar}",
        stacklevel=3,
    )
