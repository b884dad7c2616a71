"""A W&B Report per ablation table: its specification (JSON, offline) and its publication.

``make ablate``/``make table`` write ``runs/tables/<method>-<table>.report.json`` for every table
they build. The specification names what the report shows and which runs feed it:

* the paper-layout table (ours beside the published numbers) as a Markdown block;
* one bar chart per metric of the table, ``test/mean/<metric>`` across rows (runs grouped by
  ``config.ablation.row``; several seeds give a mean and a std bar);
* per row, a media grid of the anomaly-map figures ``test/figures/<category>`` of that row's runs.

Every panel grid is filtered to the table's runs: W&B group = the table, ``config.method``, the
row's tag ``row:<row>`` and the run names of exactly the runs the table was built from.
With a W&B API key (and W&B not forced offline) the report is created, or updated in place when the
specification records an earlier publication; ``make dashboard TABLE=...`` publishes it later.

Public API: ``report_spec``, ``write_report_spec``, ``build_report``, ``publish``, ``has_api_key``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from src.tables.build import METRIC_NAMES, Table
from src.tables.records import RunRecord
from src.tables.spec import AblationSpec, SpecError

FORMAT = "clip-ad-suite/wandb-report/1"


def has_api_key() -> bool:
    """A key in the environment or in ``~/.netrc``, and W&B not forced offline."""
    if os.environ.get("WANDB_MODE") in {"offline", "disabled"}:
        return False
    netrc = Path.home() / ".netrc"
    in_netrc = netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    return bool(os.environ.get("WANDB_API_KEY")) or in_netrc


def _quote(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v).replace('"', "'") for v in values) + "]"


def _filters(spec: AblationSpec, names: list[str], row: str | None = None) -> str:
    """A W&B filter expression: this table's group and method, these runs (and this row's tag)."""
    parts = [f"Metric('Group') = '{spec.table}'", f"Config('method') = '{spec.method}'"]
    if row is not None:
        parts.append(f"Tags() in {_quote([f'row:{row}'])}")
    parts.append(f"Metric('Name') in {_quote(names)}")
    return " and ".join(parts)


def report_spec(spec: AblationSpec, table: Table, runs: Mapping[tuple[str, int | None], list[RunRecord]],
                project: str | None = None, entity: str | None = None) -> dict[str, Any]:
    """The report of one table as plain data (JSON-ready); see the module docstring."""
    listed = [{"row": row, "k": k, "name": r.path.name, "path": str(r.path), "seed": r.seed,
               "request_hash": r.meta.get("request_hash"), "random_init": r.random_init}
              for (row, k), records in runs.items() for r in records]
    names = [entry["name"] for entry in listed]
    bars = [{"type": "bar", "title": METRIC_NAMES[m], "metrics": [f"test/mean/{m}"],
             "groupby": "config.ablation.row"} for m in spec.metrics]
    blocks: list[dict[str, Any]] = [
        {"type": "markdown", "title": "Table (ours beside the published numbers)", "text": table.to_markdown()},
        {"type": "panel_grid", "title": "Metrics across rows",
         "runset": {"name": f"{spec.method}-{spec.table}", "filters": _filters(spec, names),
                    "groupby": ["config.ablation.row"]}, "panels": bars},
    ]
    for row in spec.rows:
        mine = [e for e in listed if e["row"] == row.name]
        if not mine:
            continue  # a row that has not run has no figures
        categories = sorted({c for (r, _), recs in runs.items() if r == row.name for x in recs
                             for c in x.results.get("categories", {})})
        blocks.append({"type": "panel_grid", "title": f"Anomaly maps: {row.name}",
                       "runset": {"name": row.name, "filters": _filters(spec, [e["name"] for e in mine], row.name),
                                  "groupby": []},
                       "panels": [{"type": "media", "title": f"{row.name}: image | ground truth | map",
                                   "media_keys": [f"test/figures/{c}" for c in categories]}]})
    # Random-weight rows say nothing about the method: the title says so before anyone reads a bar.
    flag = " [random-init]" if any(e["random_init"] for e in listed) else ""
    return {"format": FORMAT, "title": f"{spec.method} {spec.table}{flag}: {spec.title}"[:128],
            "description": " ".join(table.notes), "project": project or os.environ.get("WANDB_PROJECT",
                                                                                         "clip-ad-suite"),
            "entity": entity or os.environ.get("WANDB_ENTITY") or None, "method": spec.method,
            "table": spec.table, "group": spec.table, "runs": listed, "blocks": blocks}


def report_path(runs_root: Path, method: str, table: str) -> Path:
    return runs_root / "tables" / f"{method}-{table}.report.json"


def write_report_spec(spec: AblationSpec, table: Table, runs: Mapping[tuple[str, int | None], list[RunRecord]],
                      runs_root: Path, publish: bool = True) -> Path:
    """Write the specification (keeping an earlier publication's id); publish it when a key is set."""
    from src.runs import atomic_write_json

    path = report_path(runs_root, spec.method, spec.table)
    data = report_spec(spec, table, runs)
    if path.is_file():
        earlier = _read(path).get("published")
        if earlier:
            data["published"] = earlier  # so the next publication updates the same report
    atomic_write_json(path, data)
    print(f"W&B report specification written to {path}")
    if publish and has_api_key():
        try:
            publish_spec(path)
        except Exception as err:  # noqa: BLE001 - the table is written; the dashboard can be published later
            print(f"W&B report not published ({err}); publish it later with: make dashboard "
                  f"METHOD={spec.method} TABLE={spec.table}")
    elif publish:
        print(f"no W&B API key: publish it later with: make dashboard METHOD={spec.method} TABLE={spec.table}")
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SpecError(f"{path}: not a readable report specification ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecError(f"{path}: not a report specification (expected format {FORMAT!r})")
    return data


def build_report(data: dict[str, Any]) -> Any:
    """The ``wandb_workspaces.reports.v2.Report`` of a specification (nothing sent yet)."""
    import wandb_workspaces.reports.v2 as wr

    entity = data.get("entity") or os.environ.get("WANDB_ENTITY") or _default_entity()
    blocks: list[Any] = []
    for block in data["blocks"]:
        blocks.append(wr.H2(block["title"]))
        if block["type"] == "markdown":
            blocks.append(wr.MarkdownBlock(block["text"]))
            continue
        rs = block["runset"]
        runset = wr.Runset(entity=entity, project=data["project"], name=rs["name"], filters=rs["filters"],
                           groupby=rs["groupby"])
        panels = [_panel(wr, p) for p in block["panels"]]
        blocks.append(wr.PanelGrid(runsets=[runset], panels=panels))
    report = wr.Report(project=data["project"], entity=entity, title=data["title"],
                       description=data["description"][:1000], blocks=blocks, width="fluid")
    if data.get("published", {}).get("id"):
        report.id = data["published"]["id"]  # update the report made earlier instead of a new one
    return report


def _default_entity() -> str:
    """The key's own user or team (asks the W&B server: only ever called when publishing)."""
    import wandb

    entity = wandb.Api().default_entity
    if not entity:
        raise SpecError("the report needs a W&B entity: set WANDB_ENTITY (your user or team name)")
    return str(entity)


def _panel(wr: Any, panel: dict[str, Any]) -> Any:
    if panel["type"] == "bar":
        return wr.BarPlot(title=panel["title"], metrics=panel["metrics"], orientation="v",
                          groupby=wr.Config(panel["groupby"].removeprefix("config.")),
                          groupby_aggfunc="mean", groupby_rangefunc="stddev")
    if panel["type"] == "media":
        return wr.MediaBrowser(title=panel["title"], media_keys=panel["media_keys"], num_columns=1)
    raise SpecError(f"unknown panel type {panel['type']!r} in a report specification; valid: bar, media")


def publish_spec(path: Path) -> str:
    """Create or update the report of ``path`` on W&B; records its id and URL in the file."""
    from src.runs import atomic_write_json

    data = _read(path)
    report = build_report(data)
    report.save()
    url = str(report.url)
    data["published"] = {"id": report.id, "url": url}
    atomic_write_json(path, data)
    print(f"W&B report: {url}")
    return url


def publish(runs_root: Path, method: str | None, table: str | None) -> list[str]:
    """``make dashboard``: publish the written specifications (of one table, or all of them)."""
    folder = runs_root / "tables"
    pattern = f"{method or '*'}-{table or '*'}.report.json"
    paths = sorted(folder.glob(pattern))
    if not paths:
        raise SpecError(f"no report specification {folder / pattern}; build the table first "
                        f"(make ablate or make table)")
    if not has_api_key():
        raise SpecError("no W&B API key: set WANDB_API_KEY (or run `wandb login`) to publish reports")
    return [publish_spec(p) for p in paths]
