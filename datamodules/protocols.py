"""Evaluation protocols: cross-dataset zero-shot and seeded k-shot.

* **zero-shot** (the field's cross-dataset convention, AnomalyCLIP#28): trainable parts are fit on
  an auxiliary dataset's TEST split (it has anomalies and masks), then the model is evaluated on
  the target's test split. Default pairing (``default_aux_dataset``): VisA for MVTec, MVTec for
  every other target, the other half for ``builtin-A``/``builtin-B``; ``builtin`` (all ten) has
  no default auxiliary set. Training and evaluation data never overlap (``check_disjoint``).
* **k-shot**: k normal images per category from the target's train split, drawn without
  replacement (``select_k_shots``), and, for trained few-shot methods, a train stream
  (``ShotStream``) of samples drawn with replacement from those shots, each optionally passed
  through the sample hook with the other shots as its ``pool``.

Public API: ``PROTOCOLS``, ``default_aux_dataset``, ``resolve_aux_dataset``, ``check_disjoint``,
``check_no_shared_files``, ``select_k_shots``, ``ShotStream``.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from lightning.pytorch.utilities import rank_zero_warn

from datamodules.base import AnomalyDataset, DatasetError, Sample
from datamodules.builtin import BUILTIN_A, BUILTIN_B, BUILTIN_CATEGORIES
from datamodules.transforms import Preprocessor

PROTOCOLS = ("zero-shot", "k-shot")
_BUILTIN_HALVES = {"builtin": BUILTIN_CATEGORIES, "builtin-A": BUILTIN_A, "builtin-B": BUILTIN_B}


def default_aux_dataset(target: str) -> str | None:
    """The papers' pairing: visa for mvtec, the other half for builtin-A/B, else mvtec."""
    if target == "mvtec":
        return "visa"
    if target == "builtin-A":
        return "builtin-B"
    if target == "builtin-B":
        return "builtin-A"
    if target == "builtin":
        return None  # both halves are evaluated; there is nothing disjoint left to train on
    return "mvtec"


def _same_folder(a: str | None, b: str | None) -> bool:
    """Both given and the same folder once resolved (``/x/``, ``./x``, a symlink to ``/x``)."""
    return a is not None and b is not None and os.path.realpath(a) == os.path.realpath(b)



def resolve_aux_dataset(
    protocol: str, k_shot: int, dataset: str, root: str | None, aux_dataset: str | None, aux_root: str | None
) -> str | None:
    """Check the protocol options; the auxiliary training dataset of zero-shot runs (None: none).

    ``aux_dataset`` None means the papers' pairing, ``"none"`` no training data; k-shot runs have none.
    """
    from datamodules.registry import DATASETS

    if protocol not in PROTOCOLS:
        raise DatasetError(f"protocol '{protocol}' is not one of {list(PROTOCOLS)}")
    if protocol == "k-shot" and (not isinstance(k_shot, int) or k_shot < 1):
        raise DatasetError(f"protocol k-shot needs k_shot >= 1 (e.g. 1, 2, 4, 8), got k_shot={k_shot!r}")
    if protocol == "zero-shot" and k_shot:
        raise DatasetError(f"k_shot={k_shot} is only meaningful with protocol='k-shot'")
    if protocol == "k-shot":
        if aux_dataset not in (None, "none") or aux_root is not None:
            rank_zero_warn(
                f"aux_dataset/aux_root are ignored by the k-shot protocol (got {aux_dataset!r}, {aux_root!r})"
            )
        return None
    aux = default_aux_dataset(dataset) if aux_dataset is None else aux_dataset
    if aux is None or str(aux).lower() == "none":
        return None
    if aux not in DATASETS:
        raise DatasetError(f"aux_dataset '{aux}' is not one of {sorted(DATASETS)} or 'none'")
    check_disjoint(dataset, root, aux, aux_root)
    return aux

def check_disjoint(target: str, target_root: str | None, aux: str, aux_root: str | None) -> None:
    """Refuse to train on the dataset that is evaluated (the protocol's one hard rule).

    Folders are compared as resolved real paths; :func:`check_no_shared_files` then checks the files.
    """
    if target in _BUILTIN_HALVES and aux in _BUILTIN_HALVES:
        shared = sorted(set(_BUILTIN_HALVES[target]) & set(_BUILTIN_HALVES[aux]))
        if shared:
            raise DatasetError(
                f"aux_dataset '{aux}' shares categories {shared} with the evaluated dataset '{target}'; "
                "the cross-dataset protocol never trains on evaluated data (use builtin-A vs builtin-B)"
            )
    elif target == aux and (target != "folder" or _same_folder(target_root, aux_root)
                            or (target_root is None and aux_root is None)):
        raise DatasetError(
            f"aux_dataset '{aux}' is the evaluated dataset; the cross-dataset protocol trains on a "
            "different dataset's test split (set aux_dataset to another dataset, or 'none')"
        )
    if _same_folder(target_root, aux_root) and not (target in _BUILTIN_HALVES and aux in _BUILTIN_HALVES):
        raise DatasetError(
            f"aux_root {aux_root} is the evaluated dataset's folder {target_root} (same real path "
            f"{os.path.realpath(aux_root)}); the cross-dataset protocol never trains on evaluated data"
        )


def check_no_shared_files(evaluated: Sequence[Sample], training: Sequence[Sample]) -> None:
    """No image or mask file (by resolved real path) is both trained on and evaluated."""
    def files(samples: Sequence[Sample]) -> dict[str, str]:
        out = {}
        for sample in samples:
            for path in (sample.image_path, sample.mask_path):
                if path:
                    out[os.path.realpath(path)] = path
        return out

    seen = files(evaluated)
    shared = sorted(real for real in files(training) if real in seen)
    if shared:
        raise DatasetError(
            f"the auxiliary (training) data shares {len(shared)} file(s) with the evaluated test split, e.g. "
            f"{seen[shared[0]]}; the cross-dataset protocol never trains on evaluated data (check aux_root)"
        )


def select_k_shots(samples: Sequence[Sample], k: int, seed: int) -> dict[str, list[Sample]]:
    """k normal samples per category, without replacement, seeded by ``(seed, crc32(category))``.

    The category enters the seed so that categories with the same number of candidates do not all
    get the same file indices.

    Candidates are sorted by path first so the draw does not depend on directory listing order.
    Returns category -> shots (sorted by path), in the categories' order of appearance.
    """
    if not isinstance(k, int) or k < 1:
        raise DatasetError(f"k_shot must be an integer >= 1 for the k-shot protocol, got {k!r}")
    by_category: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.label == 0:
            by_category.setdefault(sample.category, []).append(sample)
    shots = {}
    for category, candidates in by_category.items():
        candidates = sorted(candidates, key=lambda s: s.image_path)
        if k > len(candidates):
            raise DatasetError(
                f"k_shot={k} but category '{category}' has only {len(candidates)} normal train images "
                f"(e.g. {candidates[0].image_path}); choose k_shot <= {len(candidates)}"
            )
        rng = np.random.default_rng([seed, zlib.crc32(category.encode())])
        picked = rng.choice(len(candidates), size=k, replace=False)
        shots[category] = [candidates[i] for i in sorted(picked)]
    return shots


class ShotStream(AnomalyDataset):
    """Train stream of ``length`` items drawn with replacement (seeded) from the k shots.

    Item ``i`` is shot ``order[i]`` with ``order = default_rng(seed).integers(...)``, passed through
    augmentation and the sample hook with ``rng = default_rng([seed, i])`` and ``pool`` = the other
    shots of its category (resized, float32 [0, 1], read-only), so the stream does not depend on the
    number of workers. Resized shots are decoded once per worker and cached (k is small).
    """

    def __init__(
        self,
        shots: dict[str, list[Sample]],
        preprocessor: Preprocessor,
        length: int,
        augment: bool = False,
        sample_hook: Callable[..., dict[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        flat = [s for category_shots in shots.values() for s in category_shots]
        if not flat:
            raise DatasetError("k-shot train stream: no shots selected")
        if length < 1:
            raise DatasetError(f"k-shot train stream length must be >= 1, got {length}")
        super().__init__(flat, preprocessor, augment=augment, sample_hook=sample_hook, seed=seed)
        self.length = length
        self.order = np.random.default_rng(seed).integers(0, len(flat), size=length)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.length

    def _resized(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        if sample.image_path not in self._cache:
            image, mask = self.load_resized(sample)
            image.flags.writeable = False
            mask.flags.writeable = False
            self._cache[sample.image_path] = (image, mask)
        return self._cache[sample.image_path]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a stream of length {self.length}")
        sample = self.samples[int(self.order[index])]
        image, mask = self._resized(sample)
        pool = [
            self._resized(other)[0]
            for other in self.samples
            if other.category == sample.category and other.image_path != sample.image_path
        ]
        return self.finish(sample, image.copy(), mask.copy(), index, pool)
