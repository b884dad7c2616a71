"""A run's config: the YAML layers, the overrides that implement the launcher's options, the request hash.

Config layers, later wins: ``experiments/base.yaml``, ``experiments/methods/<m>.yaml`` (the paper
setting), the pairing preset, ``experiments/profiles/<profile>.yaml`` and
``profiles/<profile>/<m>.yaml``, then the launcher's options, then the user's overrides.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
from pathlib import Path
from typing import Any

import yaml

from src import registry
from src.pairing import preset_file, resolve_aux

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def config_files(method: str, profile: str, preset: Path | None = None) -> list[Path]:
    """Config layers, later wins; ``preset`` (the direction's ``aux-<dataset>.yaml``) follows the method's YAML.

    The method's own layers come from its ``MethodSpec.experiments`` folder (the repository's by default).
    """
    own = registry.get(method).experiments
    files = [EXPERIMENTS / "base.yaml", own / "methods" / f"{method}.yaml", *([preset] if preset else []),
             EXPERIMENTS / "profiles" / f"{profile}.yaml", own / "profiles" / profile / f"{method}.yaml"]
    return [f for f in files if f.is_file()]


def aux_of(args: argparse.Namespace) -> str | None:
    """The run's auxiliary dataset: AUX, an aux_dataset override, or the method's declared pairing."""
    return resolve_aux(args.method, args.data, args.aux, args.overrides, k_shot=args.k is not None,
                       root=registry.get(args.method).experiments)


#: Trainer settings under which a run takes no optimiser step: an evaluation of the model as built.
NO_TRAINING = ("--trainer.limit_train_batches", "--trainer.max_epochs", "--trainer.max_steps")


def _override_values(overrides: list[str]) -> list[tuple[str, str]]:
    """``(key, value)`` of every ``--key=value`` or ``--key value`` override."""
    pairs = []
    for i, item in enumerate(overrides):
        key, sep, value = item.partition("=")
        if not sep and i + 1 < len(overrides) and not overrides[i + 1].startswith("--"):
            value = overrides[i + 1]
        pairs.append((key, value))
    return pairs


def evaluation_only(method: str, overrides: list[str]) -> bool:
    """The overrides make the run evaluate without training: no step allowed, or trained weights loaded.

    Such a run reads no auxiliary dataset, so it needs no ``AUX_ROOT`` (evaluating the authors'
    released checkpoint on MVTec AD must not ask for VisA).
    """
    loads = registry.get(method).weights_overrides
    for key, value in _override_values(overrides):
        if key in NO_TRAINING and value.strip() in {"0", "0.0"}:
            return True
        if key in loads and value.strip() not in {"", "null", "None"}:
            return True
    return False


def method_preset(args: argparse.Namespace, layers: dict[str, Any]) -> Path | None:
    """The pairing preset layer of this run's direction (``methods/<m>/aux-<dataset>.yaml``), if any."""
    return preset_file(args.method, aux_of(args), args.overrides, layers, root=registry.get(args.method).experiments)


def load_layers(files: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in files:
        _deep_update(merged, yaml.safe_load(path.read_text()) or {})
    return merged


def _deep_update(target: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def model_class(layers: dict[str, Any], overrides: list[str]) -> type:
    path = layers.get("model", {}).get("class_path", "")
    for item in overrides:
        if item.startswith("--model.class_path="):
            path = item.split("=", 1)[1]
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def launcher_overrides(args: argparse.Namespace, layers: dict[str, Any], seed: int | None) -> list[str]:
    """CLI overrides that implement DATA, AUX, K, SEED and DEVICES."""
    spec = registry.get(args.method)
    out = [f"--data.init_args.dataset={'builtin-B' if args.data == 'builtin' else args.data}"]
    if args.data_root:
        out.append(f"--data.init_args.root={args.data_root}")
    aux = aux_of(args)
    if aux is None and spec.reads_no_aux(args.k):
        aux = "none"  # nothing trains: no auxiliary data to read or report
    if args.aux is None and args.k is None and evaluation_only(args.method, args.overrides):
        aux = "none"  # the pairing's dataset would not be read: the record must not name it
    if aux is not None:
        out.append(f"--data.init_args.aux_dataset={aux}")
    if args.aux_root:
        out.append(f"--data.init_args.aux_root={args.aux_root}")
    if args.k is not None:
        out += ["--data.init_args.protocol=k-shot", f"--data.init_args.k_shot={args.k}", *spec.k_shot_overrides]
    if seed is not None:
        out += [f"--seed_everything={seed}", f"--data.init_args.seed={seed}"]
    nodes = getattr(args, "nodes", None)  # absent in launch.json of runs made before NODES existed
    if args.devices is not None:
        out.append(f"--trainer.devices={args.devices}")
    if nodes is not None:
        out.append(f"--trainer.num_nodes={nodes}")
    if (args.devices or 1) * (nodes or 1) > 1 and "strategy" not in layers.get("trainer", {}):
        out.append("--trainer.strategy=ddp")
    return out


def request_hash(files: list[Path], overrides: list[str]) -> str:
    """Identity of a run's resolved request: the config files' contents plus every override."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    for item in overrides:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def compose(args: argparse.Namespace, seed: int | None) -> tuple[list[Path], dict[str, Any], list[str]]:
    """The config files, their merged content and the overrides of one run."""
    plain = config_files(args.method, args.profile)
    files = config_files(args.method, args.profile, method_preset(args, load_layers(plain)))
    layers = load_layers(files)
    return files, layers, [*launcher_overrides(args, layers, seed), *args.overrides]


def predict_random_init(layers: dict[str, Any], overrides: list[str]) -> bool:
    """Whether the config asks for random backbone weights (``pretrained: none``)."""
    pretrained = str(layers.get("model", {}).get("init_args", {}).get("pretrained", "auto"))
    for item in overrides:
        if item.startswith("--model.init_args.pretrained="):
            pretrained = item.split("=", 1)[1]
    return pretrained.lower() in {"none"}
