"""Cross-dataset pairing and per-direction presets, as each method declares them.

A method that trains on an auxiliary dataset (zero-shot protocol) declares, in
``experiments/methods/<method>/``:

* ``pairing.yaml``: evaluated dataset (``mvtec``, ``visa``, ``folder``) -> auxiliary dataset, the
  pairing of that method's paper (``none``: the method trains on nothing);
* ``aux-<dataset>.yaml`` (optional): a config layer applied when training on ``<dataset>``, right
  after the method's YAML, so a profile and the user's overrides still win (FB-CLIP's epoch
  presets: 3 epochs trained on VisA, 2 trained on MVTec).

The launcher resolves one auxiliary dataset per run (``AUX``, else an explicit
``--data.init_args.aux_dataset=``, else the method's pairing) and hands exactly that one to the
DataModule, so ``AUX_ROOT`` is read as the dataset the run trains on. Built-in targets keep the
DataModule's own pairing (the other half of the benchmark).

Public API: ``PairingError``, ``declared_pairing``, ``resolve_aux``, ``preset_file``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
TARGETS = ("mvtec", "visa", "folder")
_AUX_OVERRIDE = "--data.init_args.aux_dataset="


class PairingError(ValueError):
    """A method's pairing files, or the requested direction, cannot be used."""


def method_dir(method: str, root: Path = EXPERIMENTS) -> Path:
    return root / "methods" / method


def declared_pairing(method: str, root: Path = EXPERIMENTS) -> dict[str, str] | None:
    """``{target: aux}`` from ``methods/<method>/pairing.yaml``; None when the method declares none."""
    path = method_dir(method, root) / "pairing.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    table = data.get("aux") if isinstance(data, dict) else None
    if not isinstance(table, dict) or set(table) != set(TARGETS):
        raise PairingError(f"{path}: needs `aux:` with exactly the targets {list(TARGETS)}, got {table!r}")
    return {str(k): str(v) for k, v in table.items()}


def _explicit_aux(aux: str | None, overrides: list[str]) -> str | None:
    for item in overrides:  # the last override wins, as in LightningCLI
        if item.startswith(_AUX_OVERRIDE):
            aux = item[len(_AUX_OVERRIDE):]
    return aux


def resolve_aux(method: str, data: str, aux: str | None, overrides: list[str], k_shot: bool,
                root: Path = EXPERIMENTS) -> str | None:
    """The auxiliary dataset a zero-shot run trains on; None leaves it to the DataModule.

    Args:
        method, data: launcher METHOD and DATA.
        aux: launcher AUX (None when not given).
        overrides: the user's LightningCLI overrides (an ``aux_dataset`` there counts as explicit).
        k_shot: the run uses the k-shot protocol (no auxiliary dataset).
    """
    if k_shot:
        return None
    explicit = _explicit_aux(aux, overrides)
    if explicit is not None:
        return explicit
    if data.startswith("builtin"):
        return None
    pairing = declared_pairing(method, root)
    return None if pairing is None else pairing[data]


def _sets_length(layers: dict[str, Any], overrides: list[str]) -> bool:
    trainer = layers.get("trainer") or {}
    if trainer.get("max_epochs") is not None or trainer.get("max_steps") not in (None, -1):
        return True
    return any(o.startswith(("--trainer.max_epochs=", "--trainer.max_steps=")) for o in overrides)


def preset_file(method: str, aux: str | None, overrides: list[str], layers: dict[str, Any],
                root: Path = EXPERIMENTS) -> Path | None:
    """The ``aux-<aux>.yaml`` layer of this direction, or None.

    A method with presets has no training length of its own: for an auxiliary dataset without a
    preset (a folder, a built-in half in the paper profile) some layer (a profile) or override must
    set ``trainer.max_epochs``/``max_steps``, else the run is refused instead of training for
    Lightning's default length.

    Args:
        layers: the merged config layers without any preset (the profile's length counts).
    """
    folder = method_dir(method, root)
    presets = sorted(p.stem[len("aux-"):] for p in folder.glob("aux-*.yaml")) if folder.is_dir() else []
    if aux in presets:
        return folder / f"aux-{aux}.yaml"
    if not presets or aux == "none" or _sets_length(layers, overrides):
        return None
    raise PairingError(
        f"METHOD={method} sets its training length per direction ({folder}/aux-*.yaml: AUX="
        f"{', '.join(presets)}); training on {aux or 'the default auxiliary data'} has no preset: "
        f'give ARGS="--trainer.max_epochs=N"'
    )
