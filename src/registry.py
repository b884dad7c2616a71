"""The methods of the suite, as the launcher, the tables and the benchmark see them.

Every package under ``src/methods/`` that has a ``spec.py`` defining ``SPEC`` (a
:class:`MethodSpec`) is a method; nothing else lists them. Extra methods outside the repository's
packages are registered through ``ADSUITE_METHOD_MODULES``: comma-separated importable modules,
each defining ``SPEC`` (what docs/adding-a-method.md and the toy-method test use).

Public API: ``MethodSpec``, ``BenchSetting``, ``Learning``, ``methods``, ``names``, ``get``,
``compared``, ``bench_methods``, ``RegistryError``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

#: Comma-separated modules, each defining ``SPEC``, registered beside ``src/methods/*/spec.py``.
EXTRA_MODULES_ENV = "ADSUITE_METHOD_MODULES"
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


class RegistryError(ValueError):
    """A method spec is missing, malformed or registered twice."""


class Learning(StrEnum):
    """How a method learns, which decides what the launcher runs.

    * ``TRAINING_FREE``: nothing is fitted; zero-shot it reads no auxiliary data (``test`` only).
    * ``ZERO_SHOT_TRAINED``: fitted once on an auxiliary dataset, then tested on the evaluated one;
      a non-built-in auxiliary dataset needs AUX_ROOT.
    * ``FEW_SHOT_PER_CATEGORY``: one model per category, fitted on its k normal shots; the launcher
      runs every category of the dataset in one invocation, one subfolder each.
    """

    TRAINING_FREE = "training-free"
    ZERO_SHOT_TRAINED = "zero-shot trained"
    FEW_SHOT_PER_CATEGORY = "few-shot per category"


@dataclass(frozen=True)
class BenchSetting:
    """One method's ``make bench`` setting.

    Attributes:
        method: the method's registry name.
        backbone: open_clip architecture.
        image_size: input side in pixels.
        layers: vision blocks the method taps (1-based).
        train_batch: images per optimisation step (the paper's batch).
        pos_embed_mode: the backbone's position-embedding mode as the method builds it.
        extra: further constructor arguments of the method's Lightning module.
        module_pos_embed: whether the Lightning module takes ``pos_embed_mode`` (else it fixes its own).
        text_causal_mask: the backbone's text-encoder mask as the method builds it.
    """

    method: str
    backbone: str
    image_size: int
    layers: tuple[int, ...]
    train_batch: int
    pos_embed_mode: str = "bicubic_once"
    extra: dict[str, Any] = field(default_factory=dict)
    module_pos_embed: bool = True
    text_causal_mask: bool = True


@dataclass(frozen=True)
class MethodSpec:
    """What the launcher, the tables and the benchmark need to know about one method.

    Attributes:
        name: ``METHOD=<name>``; also names ``experiments/methods/<name>.yaml`` and
            ``experiments/reference/<name>/``.
        display_name: the name in reports (``AFR-CLIP``).
        lightning_class: import path of the Lightning module (``src.methods.afrclip.AFRCLIP``).
        learning: see :class:`Learning`.
        rank: position in listings (``METHOD`` help, ``make bench`` rows).
        compared: ``{protocol: column}``: the ``make compare`` protocols the method runs under and
            its column there (lower first).
        k_shot_overrides: LightningCLI overrides the launcher adds under ``K=`` (the method's
            own few-shot switch).
        bench_paper / bench_quick: ``make bench`` settings (paper, ``--quick``); ``None``: no row.
        time_target: ``make bench`` target, method time over bare-backbone time (fp32, batch 1).
        bench_prepare: ``(module, setting)``: what a freshly built module needs before a forward
            (prototypes from shots, ...).
        bench_batch: ``(batch, generator)``: fields the method's training ``Batch`` sets on the
            synthetic one (drawn from ``generator`` after the images).
        weights_overrides: override keys (``--model.init_args.<name>``) whose value loads trained
            weights that the run evaluates as they are (the authors' released checkpoint): such a
            run trains nothing, so it needs no auxiliary dataset.
        experiments: folder holding ``methods/<name>.yaml`` (and ``methods/<name>/``),
            ``profiles/<profile>/<name>.yaml``, ``ablations/<name>/`` and ``reference/<name>/``;
            default the repository's ``experiments/`` (a method kept outside it brings its own).
    """

    name: str
    display_name: str
    lightning_class: str
    learning: Learning
    rank: int = 100
    compared: Mapping[str, int] = field(default_factory=dict)
    k_shot_overrides: tuple[str, ...] = ()
    weights_overrides: tuple[str, ...] = ()
    bench_paper: BenchSetting | None = None
    bench_quick: BenchSetting | None = None
    time_target: float | None = None
    bench_prepare: Callable[[Any, BenchSetting], None] | None = None
    bench_batch: Callable[[Any, Any], None] | None = None
    experiments: Path = EXPERIMENTS

    @property
    def per_category(self) -> bool:
        """One model per category (the launcher's per-category loop)."""
        return self.learning is Learning.FEW_SHOT_PER_CATEGORY

    def trains_zero_shot(self, k: int | None) -> bool:
        """Fits on auxiliary data under the zero-shot protocol (so a non-built-in AUX needs AUX_ROOT)."""
        return self.learning is Learning.ZERO_SHOT_TRAINED and k is None

    def reads_no_aux(self, k: int | None) -> bool:
        """Fits nothing, so the run reads (and reports) no auxiliary dataset."""
        return self.learning is Learning.TRAINING_FREE and k is None

    def lightning_module(self) -> type:
        module, _, name = self.lightning_class.rpartition(".")
        return getattr(importlib.import_module(module), name)


def _spec_of(module_name: str) -> MethodSpec:
    module = importlib.import_module(module_name)
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, MethodSpec):
        raise RegistryError(f"{module_name}: defines no SPEC = MethodSpec(...) (see docs/adding-a-method.md)")
    return spec


def _module_names() -> list[str]:
    import src.methods as package

    found = [f"src.methods.{info.name}.spec" for info in pkgutil.iter_modules(package.__path__) if info.ispkg
             and importlib.util.find_spec(f"src.methods.{info.name}.spec") is not None]
    extra = [m.strip() for m in os.environ.get(EXTRA_MODULES_ENV, "").split(",") if m.strip()]
    return found + extra


@cache
def _registry(modules: tuple[str, ...]) -> dict[str, MethodSpec]:
    specs: dict[str, MethodSpec] = {}
    for module_name in modules:
        spec = _spec_of(module_name)
        if spec.name in specs:
            raise RegistryError(f"{module_name}: method {spec.name!r} is registered twice")
        specs[spec.name] = spec
    return dict(sorted(specs.items(), key=lambda item: (item[1].rank, item[0])))


def methods() -> dict[str, MethodSpec]:
    """Every registered method by name, in listing order."""
    return _registry(tuple(_module_names()))


def names() -> tuple[str, ...]:
    return tuple(methods())


def get(name: str) -> MethodSpec:
    """The method called ``name``; a one-line error naming the valid ones otherwise."""
    found = methods().get(name)
    if found is None:
        raise RegistryError(f"METHOD={name!r} is not a method; valid: {', '.join(names())}")
    return found


def compared(protocol: str) -> tuple[str, ...]:
    """The methods ``make compare PROTOCOL=<protocol>`` runs, in column order."""
    chosen = [s for s in methods().values() if protocol in s.compared]
    return tuple(s.name for s in sorted(chosen, key=lambda s: (s.compared[protocol], s.name)))


def protocols() -> tuple[str, ...]:
    """Every protocol some method is compared under."""
    return tuple(dict.fromkeys(p for s in methods().values() for p in s.compared))


def bench_methods() -> tuple[str, ...]:
    """Methods with a ``make bench`` row, in listing order."""
    return tuple(n for n, s in methods().items() if s.bench_paper is not None)
