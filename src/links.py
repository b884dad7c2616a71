"""Linked CLI options: one key sets another, so the other cannot be set on its own.

The CLI links ``model.init_args.image_size`` to ``data.init_args.image_size`` (the method's input
size decides the DataModule's). jsonargparse applies a link after reading every layer and overwrites
the target, so a value the user gave for the target would be dropped without a word.
:func:`check_link_targets` finds every value given for a link target (in a ``--config`` file or on
the command line) and refuses one that differs from what the link will set.

Public API: ``LINKS``, ``given_values``, ``check_link_targets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

#: (source, target): the target always takes the source's value.
LINKS: tuple[tuple[str, str], ...] = (("model.init_args.image_size", "data.init_args.image_size"),)


def _nested(data: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def given_values(args: Sequence[str], key: str) -> list[tuple[int, str, Any]]:
    """Every value given for ``key``, in order: ``(position, where, value)`` from config files and ``--key``."""
    found: list[tuple[int, str, Any]] = []
    items = list(args)
    for i, item in enumerate(items):
        value_text = None
        if item == "--config" and i + 1 < len(items):
            path = Path(items[i + 1])
            text = path.read_text() if path.is_file() else items[i + 1]  # jsonargparse also takes inline YAML
            present, value = _nested(yaml.safe_load(text) or {}, key)
            if present:
                found.append((i, str(path) if path.is_file() else "--config", value))
            continue
        if item.startswith(f"--{key}="):
            value_text = item.split("=", 1)[1]
        elif item == f"--{key}" and i + 1 < len(items):
            value_text = items[i + 1]
        if value_text is not None:
            found.append((i, f"--{key}", yaml.safe_load(value_text)))
    return found


def check_link_targets(args: Sequence[str], config: Any) -> str | None:
    """One-line error for a linked target given a value its link will overwrite; None when all agree.

    A target value given before a later layer changes the source (a profile shrinking the model's
    size after the method's YAML set both) is superseded by that change, as any earlier layer is;
    a target value given in the same layer as the source's last value, or after it, must agree.

    Args:
        args: the argument list handed to the CLI (``--config`` files and overrides).
        config: the parsed config (jsonargparse Namespace, links applied).
    """
    for source, target in LINKS:
        final = config.get(source)
        source_at = max((pos for pos, _, _ in given_values(args, source)), default=-1)
        for pos, where, value in given_values(args, target):
            if pos >= source_at and value is not None and value != final:
                return (
                    f"{target}={value} (from {where}) cannot take effect: it is linked to {source}, which sets "
                    f"it to {final}; set --{source}={value} instead"
                )
    return None
