"""Assemble ablation and comparison tables from finished runs and published numbers.

Numbers are x100 with one decimal; ``mean ± std`` (sample std) where several seeds ran. The
published number sits beside ours. A difference column (``Δ``, ours minus published) appears only
when some row ran on real pretrained weights, in the paper profile, on the paper's dataset; a
row on random weights is labelled ``random-init`` and never differenced. The published row beside
ours is that of the dataset the rows ran on (VisA for a ``DATA=visa`` run) when the paper has one.
AUPRO is differenced only against a published AUPRO computed the same way (the exact integral
versus the 200-threshold approximation); otherwise a note says why its Δ is empty.

Public API: ``Table``, ``ablation_table``, ``compare_table``, ``METRIC_NAMES``, ``DOMAINS``.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from src.aggregate import LABELS, seed_stats
from src.tables.records import RunRecord
from src.tables.spec import AblationSpec, Reference

METRIC_NAMES = LABELS
COMPARE_METRICS = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_aupro", "pixel_f1max")
#: Dataset -> domain, for the domain means of the comparison table (the papers' Industrial/Medical).
DOMAINS = {
    "mvtec": "Industrial", "visa": "Industrial", "btad": "Industrial", "mpdd": "Industrial", "real-iad": "Industrial",
    "dagm": "Industrial", "dtd": "Industrial", "headct": "Medical", "brainmri": "Medical", "br35h": "Medical",
    "isic": "Medical", "clinicdb": "Medical", "colondb": "Medical", "tn3k": "Medical",
    "builtin": "Built-in", "builtin-A": "Built-in", "builtin-B": "Built-in",
}
MISSING = "–"


@dataclass
class Table:
    """A rendered table: the same cells go to Markdown and CSV."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines += [f"> {note}" for note in self.notes]
        lines += [""] if self.notes else []
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("| " + " | ".join("---" for _ in self.header) + " |")
        lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buffer.getvalue()


def pct(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.1f}"


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, str]:
    """Mean, sample std (``None`` for one value: ``src.aggregate.seed_stats``) and the cell text over seeds."""
    mean, std = seed_stats(values)
    if mean is None:
        return None, None, MISSING
    return mean, std, pct(mean) if std is None else f"{100 * mean:.1f} ± {100 * std:.1f}"


def comparable(record: RunRecord, dataset: str, metric: str = "", published_variant: str = "unknown") -> bool:
    """May this run's ``metric`` be differenced against a published number on ``dataset``?

    AUPRO only against a published AUPRO computed the same way (``Reference.aupro_variant``).
    """
    meta = record.meta
    if metric == "pixel_aupro" and meta.get("aupro_variant") != published_variant:
        return False
    return (not record.random_init and meta.get("profile") == "paper" and bool(meta.get("pretrained", True))
            and meta.get("dataset") == dataset)


def shown_dataset(paper_dataset: str, reference: Reference, records: Sequence[RunRecord]) -> str:
    """The dataset whose published row sits beside ours: the one the rows ran on, when published."""
    ran = {str(r.meta.get("dataset")) for r in records if r.meta.get("dataset")}
    published = {d for (_, d, _, _) in reference}
    return ran.pop() if len(ran) == 1 and ran <= published else paper_dataset


def aupro_note(records: Sequence[RunRecord], published_variant: str, metrics: Sequence[str]) -> list[str]:
    """Say so when our AUPRO and the published one are computed differently (never differenced then)."""
    ours = sorted({str(r.meta.get("aupro_variant", "exact")) for r in records})
    if "pixel_aupro" not in metrics or not records or ours == [published_variant]:
        return []
    how = {"anomalyclip": "the 200-threshold approximation of AnomalyCLIP/FB-CLIP", "exact": "the exact AUPRO",
           "unknown": "of unknown computation"}
    return [f"P-AUPRO: ours is {', '.join(ours)} ({how.get(ours[0], ours[0])}), the published one "
            f"{how.get(published_variant, published_variant)}; not differenced. Rerun with "
            f"--trainer.callbacks.init_args.aupro_variant={published_variant} to compare like with like."
            if published_variant != "unknown" else
            f"P-AUPRO: ours is {', '.join(ours)}, the published one {how['unknown']}; not differenced."]


def _lookup(reference: Reference, row: str, dataset: str, k: int | None, category: str = "") -> dict[str, float]:
    if dataset:
        return reference.get((row, dataset, k, category), {})
    return next((v for (r, _, kk, c), v in reference.items() if (r, kk, c) == (row, k, category)), {})


def ablation_table(spec: AblationSpec, runs: Mapping[tuple[str, int | None], list[RunRecord]],
                   reference: Reference) -> Table:
    """The paper's layout: row, label columns, [k], per metric ours | paper [| Δ], seeds, weights."""
    lines: list[tuple[str, int | None, list[RunRecord]]] = [
        (row.name, k, list(runs.get((row.name, k), []))) for k in spec.ks for row in spec.rows
    ]
    every = [r for _, _, recs in lines for r in recs]
    dataset = shown_dataset(spec.paper_dataset, reference, every)
    variant = getattr(reference, "aupro_variant", "unknown")
    differenced = any(recs and all(comparable(r, dataset) for r in recs) for _, _, recs in lines)
    header = ["row", *spec.label_columns, *(["k"] if spec.ks != [None] else [])]
    for metric in spec.metrics:
        name = METRIC_NAMES[metric]
        header += [name, f"{name} paper"] + ([f"{name} Δ"] if differenced else [])
    header += ["seeds", "weights"]
    rows = []
    for name, k, records in lines:
        row = spec.row(name)
        cells = [name, *(row.labels.get(c, "") for c in spec.label_columns), *([str(k)] if spec.ks != [None] else [])]
        published = _lookup(reference, name, dataset, k)
        for metric in spec.metrics:
            mean, _, text = mean_std([r.results.get("mean", {}).get(metric) for r in records])
            paper = published.get(metric)
            cells += [text if records else "not run", pct(paper)]
            if differenced:
                may_diff = bool(records) and all(comparable(r, dataset, metric, variant) for r in records)
                ok = may_diff and mean is not None and paper is not None
                cells.append(f"{100 * (mean - paper):+.1f}" if ok else "")
        cells += [",".join(str(r.seed) for r in records if r.seed is not None), _weights(records)]
        rows.append(cells)
    notes = _notes(dataset, every, differenced) + (aupro_note(every, variant, spec.metrics) if differenced else [])
    return Table(spec.title, header, rows, notes)


def _weights(records: Sequence[RunRecord]) -> str:
    if not records:
        return ""
    if any(r.random_init for r in records):
        return "random-init"
    return str(records[0].meta.get("pretrained") or "pretrained")


def _notes(paper_dataset: str, records: Sequence[RunRecord], differenced: bool) -> list[str]:
    notes = []
    datasets = sorted({str(r.meta["dataset"]) for r in records if r.meta.get("dataset")})
    profiles = sorted({str(r.meta["profile"]) for r in records if r.meta.get("profile")})
    if records:
        notes.append(f"ours: profile {', '.join(profiles)}, data {', '.join(datasets)}; "
                     f"paper: published numbers{' on ' + paper_dataset if paper_dataset else ''}, percent.")
    if any(r.random_init for r in records):
        notes.append("random-init rows ran on random backbone weights: their numbers say nothing about the method "
                     "and are never differenced against the paper.")
    if not differenced:
        notes.append("no Δ column: it appears only for pretrained runs in the paper profile on the paper's dataset.")
    return notes


def compare_table(title: str, results: Mapping[str, Mapping[str, RunRecord]],
                  references: Mapping[str, Reference], k: int | None = None) -> Table:
    """Methods side by side.

    Args:
        results: ``{dataset: {method: record}}`` (one run per method and dataset).
        references: ``{method: main.csv reference}``.
        k: shots of the k-shot protocol (``None`` for zero-shot), used to pick published rows.

    Rows: each dataset's categories and mean, then domain means where several datasets ran, then
    ``published`` rows per dataset, and ``Δ`` rows where the runs are comparable.
    """
    methods = list(dict.fromkeys(m for per in results.values() for m in per))
    random = {m for per in results.values() for m, r in per.items() if r.random_init}
    header = ["dataset", "category"]
    for method in methods:
        label = f"{method} (random-init)" if method in random else method
        header += [f"{label} {METRIC_NAMES[m]}" for m in COMPARE_METRICS]
    rows: list[list[str]] = []
    means: dict[str, dict[str, dict[str, float | None]]] = {}
    for dataset, per in results.items():
        categories = list(dict.fromkeys(c for r in per.values() for c in r.results.get("categories", {})))
        for category in [*categories, "mean"]:
            cells = [dataset, category]
            for method in methods:
                record = per.get(method)
                if record is None:
                    values = {}
                elif category == "mean":
                    values = record.results.get("mean", {})
                else:
                    values = record.results.get("categories", {}).get(category, {})
                cells += [pct(values.get(m)) for m in COMPARE_METRICS]
                if category == "mean":
                    means.setdefault(dataset, {})[method] = {m: values.get(m) for m in COMPARE_METRICS}
            rows.append(cells)
    if len(results) > 1:
        rows += _domain_rows(list(results), methods, means)
    published, any_diff = _published_rows(results, references, methods, means, k)
    rows += published
    records = [r for per in results.values() for r in per.values()]
    notes = _notes("", records, any_diff)
    for method in methods if any_diff else []:
        mine = [per[method] for per in results.values() if method in per]
        notes += [f"{method}: {n}" for n in aupro_note(mine, getattr(references.get(method, {}), "aupro_variant",
                                                                      "unknown"), COMPARE_METRICS)]
    return Table(title, header, rows, notes)


def _domain_rows(datasets: Sequence[str], methods: Sequence[str],
                 means: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> list[list[str]]:
    """One row per domain (``DOMAINS``): the mean over its datasets' means, ``MISSING`` where one lacks it."""
    domains: dict[str, list[str]] = {}
    for dataset in datasets:
        domains.setdefault(DOMAINS.get(dataset, "Other"), []).append(dataset)
    rows = []
    for domain, members in domains.items():
        cells = [f"{domain} mean ({len(members)} datasets)", "mean"]
        for method in methods:
            for metric in COMPARE_METRICS:
                vals = [means[d].get(method, {}).get(metric) for d in members]
                cells.append(pct(statistics.fmean(vals)) if vals and None not in vals else MISSING)
        rows.append(cells)
    return rows


def _published_rows(results: Mapping[str, Mapping[str, RunRecord]], references: Mapping[str, Reference],
                    methods: Sequence[str], means: Mapping[str, Mapping[str, Mapping[str, float | None]]],
                    k: int | None) -> tuple[list[list[str]], bool]:
    """Per published dataset: the ``published`` row, and a ``Δ`` row where some run is comparable."""
    published_datasets = list(dict.fromkeys(d for ref in references.values() for (_, d, _, c) in ref if not c))
    rows: list[list[str]] = []
    any_diff = False
    for dataset in published_datasets:
        cells = [dataset, "published"]
        diff = [dataset, "Δ ours − published"]
        has_diff = False
        for method in methods:
            reference = references.get(method, {})
            paper = _lookup(reference, method, dataset, k)
            record = results.get(dataset, {}).get(method)
            variant = getattr(reference, "aupro_variant", "unknown")
            for metric in COMPARE_METRICS:
                cells.append(pct(paper.get(metric)))
                ours = means.get(dataset, {}).get(method, {}).get(metric)
                if (record is not None and comparable(record, dataset, metric, variant) and ours is not None
                        and metric in paper):
                    diff.append(f"{100 * (ours - paper[metric]):+.1f}")
                    has_diff = True
                else:
                    diff.append("")
        rows.append(cells)
        if has_diff:
            rows.append(diff)
            any_diff = True
    return rows, any_diff
