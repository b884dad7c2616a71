"""Request checks that run before anything is built (no run directory, no model, no data).

* duplicate ``SEEDS``;
* ``class_path`` values outside the suite's packages (checked before anything imports them);
* numeric options out of range (a negative learning rate, zero epochs, a fraction above 1);
* ``RESUME`` of a finished run, or with options that differ from the run's own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from src.launch.errors import LaunchError

#: Where a configured class may come from; anything else is refused before it is imported.
CLASS_PREFIXES = ("src.", "datamodules.", "lightning.", "torch.optim.")


def check_seeds(seeds: list[int]) -> None:
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise LaunchError(f"SEEDS lists seed(s) {duplicates} more than once; give each seed once, e.g. 0,1,2")


def _class_paths(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if key == "class_path" and isinstance(value, str):
                yield here, value
            else:
                yield from _class_paths(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _class_paths(value, f"{where}[{i}]")


def check_class_paths(layers: dict[str, Any], overrides: list[str]) -> None:
    """Every ``class_path`` of the config files and the overrides names a class of an allowed package."""
    found = list(_class_paths(layers))
    for item in overrides:
        key, _, value = item.lstrip("-").partition("=")
        if key.endswith("class_path") or (key in ("model", "data") and "." in value):
            found.append((key, value))
    from src import registry

    registered = {spec.lightning_class for spec in registry.methods().values()}  # methods registered from outside
    for key, value in found:
        if not value.startswith(CLASS_PREFIXES) and value not in registered:
            raise LaunchError(
                f"{key}={value!r} is outside the suite: a configured class must live under "
                f"{', '.join(CLASS_PREFIXES)} (methods: src.methods.<name>)"
            )


# (section, key predicate, test, what it must be)
def _is_lr(key: str) -> bool:
    return key == "lr" or key.endswith("_lr") or key == "learning_rate"


_MODEL_RULES = [
    (_is_lr, lambda v: v > 0, "> 0 (a learning rate)"),
    (lambda k: k in ("weight_decay", "eval_sigma", "focal_gamma") or k.endswith("_weight"),
     lambda v: v >= 0, ">= 0"),
    (lambda k: k == "temperature", lambda v: v > 0, "> 0"),
    (lambda k: k == "image_size", lambda v: v >= 1, ">= 1 (pixels)"),
]
_DATA_RULES = [
    (lambda k: k in ("batch_size", "eval_batch_size", "image_size"), lambda v: v >= 1, ">= 1"),
    (lambda k: k in ("num_workers", "k_shot", "seed"), lambda v: v >= 0, ">= 0"),
    (lambda k: k == "train_steps", lambda v: v >= 1, ">= 1"),
]
_TRAINER_RULES = [
    (lambda k: k in ("max_epochs", "max_steps"), lambda v: v >= 1 or v == -1, ">= 1 (or -1 for no limit)"),
    (lambda k: k in ("min_epochs", "min_steps", "num_sanity_val_steps"), lambda v: v >= 0 or v == -1, ">= 0"),
    (lambda k: k in ("log_every_n_steps", "accumulate_grad_batches", "check_val_every_n_epoch", "devices",
                     "num_nodes"), lambda v: v >= 1, ">= 1"),
    (lambda k: k.startswith("limit_") and k.endswith("_batches"), lambda v: v >= 0 if isinstance(v, int)
     else 0 <= v <= 1, "an int >= 0 (that many batches) or a float in [0, 1] (that fraction)"),
    (lambda k: k == "gradient_clip_val", lambda v: v >= 0, ">= 0"),
]


def _numbers(node: Any, where: str) -> Iterator[tuple[str, str, float]]:
    """(dotted key, last key, value) of every number under ``node`` (lists of numbers included)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                yield f"{where}.{key}", str(key), value
            elif isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                 for v in value):
                for v in value:
                    yield f"{where}.{key}", str(key), v


def check_ranges(config: dict[str, Any]) -> None:
    """Numeric options of the parsed config within their valid range, or a :class:`LaunchError`."""
    sections = [
        ("model.init_args", (config.get("model") or {}).get("init_args") or {}, _MODEL_RULES),
        ("data.init_args", (config.get("data") or {}).get("init_args") or {}, _DATA_RULES),
        ("trainer", config.get("trainer") or {}, _TRAINER_RULES),
    ]
    for where, node, rules in sections:
        for dotted, key, value in _numbers(node, where):
            if isinstance(value, float) and not math.isfinite(value):
                raise LaunchError(f"--{dotted}={value} is not a finite number")
            for applies, ok, what in rules:
                if applies(key) and not ok(value):
                    raise LaunchError(f"--{dotted}={value} is out of range: it must be {what}")


# ---------------------------------------------------------------------- RESUME
#: Launcher options a RESUME may repeat but not change (the run's own launch.json wins).
RESUME_KEYS = ("method", "profile", "data", "data_root", "aux", "aux_root", "devices", "k", "seed", "seeds",
               "suffix")


def check_resume(run_dir: Path, given: dict[str, Any], defaults: dict[str, Any], stored: dict[str, Any]) -> None:
    """Refuse RESUME of a finished run, and options that differ from the ones the run started with."""
    done = run_dir / "metrics.json"
    if done.is_file():
        raise LaunchError(
            f"RESUME={run_dir}: this run finished; its results are in {done}. Resuming would re-test it and "
            f"overwrite them. Start a new run with the same options instead: make train METHOD={stored.get('method')}"
            f" (or `python -m src test --config {run_dir / 'config.yaml'}` to re-score its weights)"
        )
    conflicts = []
    for key in RESUME_KEYS:
        value = given.get(key)
        if value != defaults.get(key) and value != stored.get(key):
            conflicts.append(f"{key.upper()}={value} (the run has {stored.get(key)})")
    overrides = list(given.get("overrides") or [])
    if overrides and overrides != list(stored.get("overrides") or []):
        had = " ".join(stored.get("overrides") or []) or "none"
        conflicts.append(f"ARGS={' '.join(overrides)} (the run has {had})")
    if conflicts:
        raise LaunchError(
            f"RESUME={run_dir} continues the run with its own options; these differ: {'; '.join(conflicts)}. "
            "Drop them to resume, or start a new run with the new options"
        )
