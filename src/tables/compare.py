"""``make compare``: every method of a protocol on each dataset, side by side, with published numbers.

The methods and their column order come from the registry (``MethodSpec.compared``); runs are
obtained through ``src.tables.launch`` (reused when a finished run of the same request exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from src import registry
from src.logging import figures
from src.logging.samples import Sample, load_samples, method_figure
from src.tables import launch
from src.tables.build import Table, compare_table
from src.tables.records import RunRecord, check_complete, scan_runs
from src.tables.spec import REPO, SpecError, load_reference, protocol_overrides, reference_path

#: ``{protocol: methods in column order}``, as the methods declare it (at import; ``compare`` asks the
#: registry when it runs, so a method registered later through ``ADSUITE_METHOD_MODULES`` counts).
COMPARED = {protocol: registry.compared(protocol) for protocol in registry.protocols()}


def compare(profile: str = "quick", protocol: str = "zero-shot", k: int | None = None,
            data: Sequence[str] = (), data_roots: Sequence[str] = (), runs_root: Path = REPO / "runs",
            overrides: Sequence[str] = (), methods: Sequence[str] | None = None,
            log: bool = True, aux: Sequence[str] = (), aux_roots: Sequence[str] = ()) -> tuple[Table, list[str]]:
    """Run (or reuse) each method on each dataset under the protocol; write table and figures.

    ``aux``/``aux_roots`` (AUX/AUX_ROOT) list one entry per dataset, like ``data_roots``: the two
    directions of a cross-dataset comparison train on different data.
    """
    if protocol not in registry.protocols():
        raise SpecError(f"PROTOCOL={protocol!r} is not valid; choose one of {sorted(registry.protocols())}")
    methods = methods or registry.compared(protocol)
    if protocol == "k-shot":
        k = k or 2
    elif k is not None:
        raise SpecError(f"K={k} only applies to PROTOCOL=k-shot")
    for name, given in (("DATA_ROOT", data_roots), ("AUX", aux), ("AUX_ROOT", aux_roots)):
        if given and len(given) != max(len(data), 1):
            raise SpecError(f"{name} lists {len(given)} entries for {max(len(data), 1)} datasets "
                            f"(DATA={','.join(data) or 'the profile default'}); give one per dataset")
    datasets = list(data) or [None]
    roots = list(data_roots) or [None] * len(datasets)
    auxes, aux_folders = list(aux) or [None] * len(datasets), list(aux_roots) or [None] * len(datasets)
    for dataset, aux_name, aux_root in zip(datasets, auxes, aux_folders, strict=True):
        _check_one_aux_root(methods, dataset, aux_name, aux_root, k is not None)
    extra = protocol_overrides(protocol)
    records = scan_runs(runs_root)
    results: dict[str, dict[str, RunRecord]] = {}
    failures: list[str] = []
    for dataset, root, aux_name, aux_root in zip(datasets, roots, auxes, aux_folders, strict=True):
        for method in methods:
            argv = ["--method", method, "--profile", profile, "--runs-root", str(runs_root)]
            argv += launch.data_options(dataset, root, aux_name, aux_root)
            argv += ["--k", str(k)] if k is not None else []
            argv += ["--", *extra, *overrides]
            print(f"\n=== compare {protocol}: {method} on {dataset or 'the profile default'}", flush=True)
            try:
                record = launch._obtain(argv, records)
            except (launch.RunFailedError, SpecError) as err:
                failures.append(f"{method} on {dataset or 'default data'}: {err}")
                continue
            results.setdefault(str(record.meta.get("dataset")), {})[method] = record
    if not results:
        raise launch.RunFailedError("no method ran:\n  " + "\n  ".join(failures))
    name = f"compare-{protocol}"
    title = f"Comparison, {protocol}" + (f" k={k}" if k else "") + f", profile {profile}"
    used = list(dict.fromkeys(m for per in results.values() for m in per))
    check_complete([r for per in results.values() for r in per.values()])
    result = compare_table(title, results, {m: load_reference(reference_path(m, "main")) for m in used}, k)
    pictures = compare_figures(results, runs_root / "tables" / f"{name}-figures")
    launch._publish(result, runs_root, name, group=name, log=log, pictures=pictures,
             config={"profile": profile, "protocol": protocol, "k": k, "ablation": {"table": "", "row": ""},
                     "runs": {f"{d}/{m}": str(r.path) for d, per in results.items() for m, r in per.items()}})
    return result, failures


def _check_one_aux_root(methods: Sequence[str], dataset: str | None, aux: str | None, aux_root: str | None,
                        k_shot: bool) -> None:
    """One AUX_ROOT serves a dataset's methods only if they all train on the same kind of dataset."""
    from src.pairing import resolve_aux

    if not aux_root or aux or not dataset:
        return
    paired = {m: resolve_aux(m, dataset, None, [], k_shot, root=registry.get(m).experiments) for m in methods}
    kinds = {a for a in paired.values() if a not in (None, "none")}
    if len(kinds) > 1:
        raise SpecError(
            f"DATA={dataset}: the methods' paper pairings train on different datasets "
            f"({', '.join(f'{m}: {a}' for m, a in paired.items())}) and one AUX_ROOT cannot be both; give "
            f"AUX=<dataset> for a common pairing, or METHODS= per pairing"
        )


def compare_figures(results: dict[str, dict[str, RunRecord]], out_dir: Path) -> list[Path]:
    """One PNG per dataset and category: image, ground truth, each method's map overlay."""
    written = []
    for dataset, per in results.items():
        samples: dict[str, list[Sample]] = {}
        for method, record in per.items():
            for path in sorted(record.path.rglob("figures/samples.npz")):
                samples.setdefault(method, []).extend(load_samples(path))
        if not samples:
            print(f"no figures/samples.npz in the {dataset} runs (is WandbResults in the trainer callbacks?)")
            continue
        categories = sorted({s.category for ss in samples.values() for s in ss})
        for category in categories:
            try:
                picture = method_figure(samples, category)
            except ValueError as err:
                print(f"figure of {dataset}/{category} skipped: {err}")
                continue
            written.append(figures.write_png(out_dir / dataset / f"{category}.png", picture))
    return written
