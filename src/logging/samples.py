"""The few evaluated samples a run keeps for figures, and the figures made from them.

A run keeps, per category, the first ``per_label`` anomalous and the first ``per_label`` normal
samples by dataset ``index``: the same samples on any number of processes and for every method
evaluated on the same data, so ``compare`` can put the methods' maps side by side. They are
saved as ``figures/samples.npz`` next to one PNG per category.

``samples.npz`` arrays (``N`` samples): ``image`` uint8 (N, S, S, 3); ``mask`` uint8 (N, S, S);
``anomaly_map`` float32 (N, S, S); ``pred_score`` float32 (N,); ``label`` int64 (N,); ``index``
int64 (N,); ``category``, ``defect_type``, ``path`` str (N,).

Public API: ``Sample``, ``SampleStore``, ``save_samples``, ``load_samples``, ``category_figure``,
``method_figure``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.logging import figures


@dataclass(frozen=True)
class Sample:
    """One evaluated image with its ground truth and post-processed map."""

    category: str
    index: int
    label: int
    defect_type: str
    path: str
    pred_score: float
    image: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) uint8 in {0, 1}
    anomaly_map: np.ndarray  # (S, S) float32


class SampleStore:
    """Keeps the ``per_label`` lowest-index samples of each (category, label)."""

    def __init__(self, per_label: int = 1) -> None:
        if per_label < 1:
            raise ValueError(f"samples per label must be >= 1, got {per_label}")
        self.per_label = per_label
        self._kept: dict[tuple[str, int], dict[int, Sample]] = {}

    def wants(self, category: str, label: int, index: int) -> bool:
        """Would a sample with this key be kept? (Lets callers skip building it.)"""
        kept = self._kept.get((category, label), {})
        if index in kept:
            return False
        return len(kept) < self.per_label or index < max(kept)

    def add(self, sample: Sample) -> None:
        kept = self._kept.setdefault((sample.category, sample.label), {})
        kept[sample.index] = sample
        for index in sorted(kept)[self.per_label:]:
            del kept[index]

    def extend(self, samples: Iterable[Sample]) -> None:
        for sample in samples:
            if self.wants(sample.category, sample.label, sample.index):
                self.add(sample)

    def samples(self) -> list[Sample]:
        """Kept samples ordered by category, anomalous first, then index."""
        keys = sorted(self._kept, key=lambda k: (k[0], -k[1]))
        return [self._kept[k][i] for k in keys for i in sorted(self._kept[k])]

    def __len__(self) -> int:
        return sum(len(v) for v in self._kept.values())


def save_samples(samples: list[Sample], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        image=np.stack([s.image for s in samples]),
        mask=np.stack([s.mask for s in samples]),
        anomaly_map=np.stack([s.anomaly_map for s in samples]).astype(np.float32),
        pred_score=np.array([s.pred_score for s in samples], np.float32),
        label=np.array([s.label for s in samples], np.int64),
        index=np.array([s.index for s in samples], np.int64),
        category=np.array([s.category for s in samples]),
        defect_type=np.array([s.defect_type for s in samples]),
        path=np.array([s.path for s in samples]),
    )
    return path


def load_samples(path: str | Path) -> list[Sample]:
    with np.load(Path(path), allow_pickle=False) as data:
        return [
            Sample(category=str(data["category"][i]), index=int(data["index"][i]), label=int(data["label"][i]),
                   defect_type=str(data["defect_type"][i]), path=str(data["path"][i]),
                   pred_score=float(data["pred_score"][i]), image=data["image"][i], mask=data["mask"][i],
                   anomaly_map=data["anomaly_map"][i])
            for i in range(len(data["index"]))
        ]


def _range(samples: Iterable[Sample]) -> tuple[float, float]:
    maps = [s.anomaly_map for s in samples]
    return float(min(m.min() for m in maps)), float(max(m.max() for m in maps))


def category_figure(samples: list[Sample], cell: int = 160) -> np.ndarray:
    """One row per sample: image, ground truth, map overlay (colour range shared by the rows)."""
    lo, hi = _range(samples)
    rows = []
    for s in samples:
        tag = s.defect_type if s.label else "good"
        rows.append([
            figures.titled(s.image, f"{tag} #{s.index}", cell),
            figures.titled(figures.mask_panel(s.mask), "ground truth", cell),
            figures.titled(figures.overlay(s.image, figures.colorize(s.anomaly_map, lo, hi)),
                           f"score {s.pred_score:.3g}", cell),
        ])
    return figures.grid(rows, cell=cell)


def method_figure(per_method: Mapping[str, list[Sample]], category: str, cell: int = 160) -> np.ndarray:
    """Rows = the category's samples (matched by dataset index), columns = image, truth, each method.

    Each method's maps are stretched over that method's own range in the category, since raw
    scores of different methods are not on one scale.
    """
    chosen = {m: {s.index: s for s in ss if s.category == category} for m, ss in per_method.items()}
    chosen = {m: d for m, d in chosen.items() if d}
    if not chosen:
        raise ValueError(f"no method kept samples of category {category!r}")
    shared = sorted(set.intersection(*(set(d) for d in chosen.values())))
    if not shared:
        raise ValueError(f"the methods kept different samples of {category!r}; were they evaluated on the same data?")
    ranges = {m: _range(d[i] for i in shared) for m, d in chosen.items()}
    rows = []
    for index in sorted(shared, key=lambda i: (-next(iter(chosen.values()))[i].label, i)):
        first = next(iter(chosen.values()))[index]
        row = [figures.titled(first.image, f"{first.defect_type if first.label else 'good'} #{index}", cell),
               figures.titled(figures.mask_panel(first.mask), "ground truth", cell)]
        for method, by_index in chosen.items():
            s = by_index[index]
            image = figures.overlay(s.image, figures.colorize(s.anomaly_map, *ranges[method]))
            row.append(figures.titled(image, method, cell))
        rows.append(row)
    return figures.grid(rows, cell=cell)
