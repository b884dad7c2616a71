"""Tables at scale: rows side by side pinned to devices, progress lines, the W&B report specification.

The launcher is replaced by a fake that writes a finished run directory (as in test_tables.py), so
these tests pin the scheduling (which device a row sees, that no device is shared by two running
rows, that the table does not depend on JOBS or finishing order) without training anything.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest

from src.tables import __main__ as cli
from src.tables import launch, report
from src.tables.parallel import Slot, cpu_count, plan_slots
from src.tables.spec import SpecError
from tests.test_tables import GRID, _reference, _run, _spec

GRID3 = GRID + """  - name: third
    labels: {A: "✓", B: ""}
    overrides: {model.init_args.num_stages: 2}
"""
# Per row: (image AUROC, pixel AUROC, seconds the fake run takes). Row 'base' is the slowest, so
# with two workers the rows finish in another order than they were listed.
VALUES = {"base": (0.61, 0.51, 0.6), "full": (0.72, 0.62, 0.05), "third": (0.83, 0.73, 0.1)}


def test_slots_split_gpus_and_cores_evenly() -> None:
    assert plan_slots(1, cores=8) == [Slot((), 8, pinned=False)]  # serial: the row sees the whole machine
    assert plan_slots(2, cores=8) == [Slot((), 4), Slot((), 4)]
    assert plan_slots(3, cores=2) == [Slot((), 1)] * 3  # never zero threads
    assert plan_slots(2, ["0", "1", "2", "3"], cores=16) == [Slot(("0", "1"), 8), Slot(("2", "3"), 8)]
    assert Slot(("2", "3"), 8).env() == {"OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8", "CUDA_VISIBLE_DEVICES": "2,3"}
    assert Slot((), 1, pinned=False).env() == {}
    with pytest.raises(SpecError, match=r"GPUS=0,1,2 \(3 devices\) cannot be split evenly over JOBS=2"):
        plan_slots(2, ["0", "1", "2"])
    with pytest.raises(SpecError, match="JOBS=0 must be a positive"):
        plan_slots(0)


def _fake(root: Path, seen: list[dict], active: dict[str, str], lock: threading.Lock):
    def fake_launcher(argv, env=None, log=None):
        row = argv[argv.index("--ablation-row") + 1]
        seed = argv[argv.index("--seed") + 1] if "--seed" in argv else None
        gpus = (env or {}).get("CUDA_VISIBLE_DEVICES", "")
        with lock:
            for gpu in filter(None, gpus.split(",")):
                assert gpu not in active, f"GPU {gpu} given to {row} while {active.get(gpu)} runs on it"
                active[gpu] = row
            entry = {"row": row, "env": dict(env or {}), "log": log, "start": time.monotonic()}
            seen.append(entry)
        image, pixel, seconds = VALUES[row]
        time.sleep(seconds)
        entry["end"] = time.monotonic()
        shift = 0.01 * int(seed or 0)
        run = _run(root, f"{row}-s{seed}-{uuid.uuid4().hex[:6]}", row, image + shift, pixel,
                   seed=None if seed is None else int(seed), digest=launch.request_hash_of(argv))
        with lock:
            for gpu in filter(None, gpus.split(",")):
                active.pop(gpu, None)
        return run
    return fake_launcher


def _peak(seen: list[dict]) -> int:
    """The most fake runs that were running at the same moment."""
    events = sorted([(s["start"], 1) for s in seen] + [(s["end"], -1) for s in seen], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _ablate(tmp_path, monkeypatch, root: Path, **kwargs):
    spec = _spec(tmp_path, GRID3)
    monkeypatch.setattr(launch, "load_ablation", lambda method, table: spec)
    monkeypatch.setattr(launch, "reference_path", lambda method, table: tmp_path / "ref.csv")
    _reference(tmp_path)
    seen: list[dict] = []
    monkeypatch.setattr(launch, "run_launcher", _fake(root, seen, {}, threading.Lock()))
    table, failures = launch.ablate("clip", "demo", runs_root=root, log=False, **kwargs)
    assert failures == []
    return table, seen


def test_jobs_run_rows_side_by_side_pinned_and_give_the_serial_table(tmp_path, monkeypatch, capsys) -> None:
    serial, seen1 = _ablate(tmp_path, monkeypatch, tmp_path / "one", seeds=[0, 1])
    assert all(s["env"] == {} and s["log"] is None for s in seen1)  # JOBS=1: exactly the call of before
    parallel, seen2 = _ablate(tmp_path, monkeypatch, tmp_path / "two", seeds=[0, 1], jobs=2, gpus=["0", "1"])
    assert parallel.rows == serial.rows and parallel.header == serial.header
    # Seeds listed in order whatever finished first; the seed shift of the fake is in the mean.
    base = dict(zip(serial.header, serial.rows[0], strict=True))
    assert base["I-AUROC"] == "61.5 ± 0.7" and base["seeds"] == "0,1"
    assert sorted(s["env"]["CUDA_VISIBLE_DEVICES"] for s in seen2) == ["0", "0", "0", "1", "1", "1"]
    assert {s["env"]["OMP_NUM_THREADS"] for s in seen2} == {str(max(1, cpu_count() // 2))}
    logs = {s["log"].name for s in seen2}
    assert "clip_demo_base_seed_0.log" in logs and all(s["log"].parent.name == "clip-demo" for s in seen2)
    # Rows running at once: never more than JOBS, and two workers do overlap (both slow 'base' seeds).
    assert _peak(seen1) == 1 and _peak(seen2) == 2
    out = capsys.readouterr().out
    lines = re.findall(r"^\[(\d)/6\] clip demo/(\w+) seed (\d)  (\d+\.\d) s  I-AUROC (\d+\.\d)$", out, re.M)
    assert len(lines) == 12  # a line per finished run, in both tables
    assert [n for n, *_ in lines[6:]] == ["1", "2", "3", "4", "5", "6"]
    assert {(row, seed, value) for _, row, seed, _, value in lines[6:]} == {
        ("base", "0", "61.0"), ("base", "1", "62.0"), ("full", "0", "72.0"), ("full", "1", "73.0"),
        ("third", "0", "83.0"), ("third", "1", "84.0")}


def test_parallel_rerun_continues_where_it_stopped(tmp_path, monkeypatch, capsys) -> None:
    root = tmp_path / "runs"
    _ablate(tmp_path, monkeypatch, root, jobs=2)
    (next(root.glob("full-*")) / "metrics.json").unlink()  # that row was interrupted
    _, seen = _ablate(tmp_path, monkeypatch, root, jobs=2)
    assert [s["row"] for s in seen] == ["full"]
    out = capsys.readouterr().out
    assert out.count("[skip] clip demo/base") == 1 and "[3/3] clip demo/full" in out


def test_report_spec_panels_filters_and_runs(tmp_path) -> None:
    spec = _spec(tmp_path, GRID3)
    root = tmp_path / "runs"
    runs = {("base", None): [launch._record(_run(root, "b0", "base", 0.8, 0.6, seed=0)),
                             launch._record(_run(root, "b1", "base", 0.9, 0.7, seed=1))],
            ("full", None): [launch._record(_run(root, "f0", "full", 0.95, 0.75, seed=0))]}
    table = launch.ablation_table(spec, runs, _reference(tmp_path))
    data = report.report_spec(spec, table, runs, project="proj", entity="team")
    assert data["title"] == "clip demo [random-init]: Demo Table 3: modules"
    assert (data["project"], data["entity"]) == ("proj", "team")
    assert [(r["row"], r["name"], r["seed"]) for r in data["runs"]] == [("base", "b0", 0), ("base", "b1", 1),
                                                                       ("full", "f0", 0)]
    markdown, bars, *grids = data["blocks"]
    assert markdown["text"] == table.to_markdown() and "| base |   |   | 85.0 ± 7.1 | 89.1 |" in markdown["text"]
    assert [p["metrics"] for p in bars["panels"]] == [["test/mean/image_auroc"], ["test/mean/pixel_auroc"]]
    assert {p["groupby"] for p in bars["panels"]} == {"config.ablation.row"}
    assert bars["runset"]["filters"] == ("Metric('Group') = 'demo' and Config('method') = 'clip' and "
                                         "Metric('Name') in ['b0', 'b1', 'f0']")
    # A figure grid per row that ran ('third' did not), filtered to that row's runs.
    assert [g["title"] for g in grids] == ["Anomaly maps: base", "Anomaly maps: full"]
    assert grids[1]["runset"]["filters"].endswith("Tags() in ['row:full'] and Metric('Name') in ['f0']")
    assert grids[0]["panels"][0]["media_keys"] == ["test/figures/c1"]
    from wandb_workspaces import expr

    parsed = expr.expr_to_filters(grids[1]["runset"]["filters"])
    assert [(f.key.section, f.key.name, f.op, f.value) for f in parsed.filters] == [
        ("run", "group", "=", "demo"), ("config", "method", "=", "clip"), ("run", "tags", "IN", ["row:full"]),
        ("run", "displayName", "IN", ["f0"])]


def test_report_written_offline_and_published_with_a_key_without_network(tmp_path, monkeypatch, capsys) -> None:
    import wandb_workspaces.reports.v2 as wr

    root = tmp_path / "runs"
    _ablate(tmp_path, monkeypatch, root)
    path = root / "tables" / "clip-demo.report.json"
    data = json.loads(path.read_text())
    assert data["format"] == report.FORMAT and "published" not in data
    assert f"W&B report specification written to {path}" in capsys.readouterr().out
    with pytest.raises(SpecError, match="no W&B API key"):
        report.publish(root, "clip", "demo")
    saved: list = []

    def fake_save(self, draft=False, clone=False):  # noqa: ANN001 - stands in for the GraphQL upsert
        saved.append(self)
        self.id = self.id or "abc123"
        return self

    monkeypatch.setattr(wr.Report, "save", fake_save)
    monkeypatch.setattr(wr.Report, "url", property(lambda self: f"https://wandb.test/team/proj/reports/x--{self.id}"))
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_ENTITY", "team")
    assert report.publish(root, "clip", None) == ["https://wandb.test/team/proj/reports/x--abc123"]
    built = saved[0]
    kinds = [type(b).__name__ for b in built.blocks]
    assert kinds == ["H2", "MarkdownBlock", "H2", "PanelGrid", "H2", "PanelGrid", "H2", "PanelGrid", "H2",
                     "PanelGrid"]
    grid = built.blocks[3]
    assert [type(p).__name__ for p in grid.panels] == ["BarPlot", "BarPlot"]
    assert grid.panels[0].metrics == ["test/mean/image_auroc"] and grid.runsets[0].entity == "team"
    assert type(built.blocks[5].panels[0]).__name__ == "MediaBrowser"
    assert json.loads(path.read_text())["published"]["id"] == "abc123"
    # Rebuilding the table keeps the publication, and the next one updates the same report.
    logged: list[str] = []
    monkeypatch.setattr(launch, "log_table", lambda table, save_dir, name, *a, **k: logged.append(name))
    launch.rebuild("clip", "demo", root, log=True)
    assert logged == ["clip-demo"]
    assert len(saved) == 2 and saved[1].id == "abc123"


def test_cli_rejects_bad_scale_options_before_any_run(tmp_path, capsys) -> None:
    root = ["--runs-root", str(tmp_path)]
    assert cli.main([*root, "ablate", "--method", "clip", "--table", "layers", "--jobs", "2", "--gpus", "0,1,2"]) == 2
    assert "cannot be split evenly over JOBS=2" in capsys.readouterr().err
    assert cli.main([*root, "ablate", "--method", "clip", "--table", "layers", "--launcher", "slurm",
                     "--jobs", "2"]) == 2
    assert "JOBS/GPUS apply to LAUNCHER=local" in capsys.readouterr().err
    if shutil.which("sbatch") is None:
        assert cli.main([*root, "ablate", "--method", "clip", "--table", "layers", "--launcher", "slurm"]) == 2
        assert "LAUNCHER=slurm needs `sbatch` on PATH" in capsys.readouterr().err
    assert cli.main([*root, "dashboard", "--table", "layers"]) == 2
    assert "no report specification" in capsys.readouterr().err
    assert not any(tmp_path.glob("*-clip-*"))


def test_report_spec_of_every_shipped_table(tmp_path) -> None:
    """Every grid under experiments/ablations gives a report: a bar per metric, a figure grid per row."""
    import wandb_workspaces.reports.v2 as wr

    from src.tables.records import RunRecord
    from src.tables.spec import available_tables, load_ablation, load_reference, reference_path

    grids = [(m, t) for m, tables in available_tables().items() for t in tables]
    assert len(grids) >= 11
    for method, name in grids:
        spec = load_ablation(method, name)
        runs = {}
        for i, (row, k) in enumerate((r.name, k) for k in spec.ks for r in spec.rows):
            meta = {"method": method, "profile": "quick", "dataset": "builtin-B", "seed": 0, "random_init": True,
                    "request_hash": f"h{i}", "ablation": {"table": name, "row": row}}
            results = {"mean": {m: 0.5 + 0.01 * i for m in spec.metrics}, "meta": meta,
                       "categories": {"cell": {}, "grass": {}}}
            runs[(row, k)] = [RunRecord(tmp_path / f"{method}-{name}-{i}", results, float(i))]
        table = launch.ablation_table(spec, runs, load_reference(reference_path(method, name)))
        data = report.report_spec(spec, table, runs, entity="team")
        markdown, bars, *figures = data["blocks"]
        assert markdown["text"] == table.to_markdown(), (method, name)
        assert [p["metrics"] for p in bars["panels"]] == [[f"test/mean/{m}"] for m in spec.metrics], (method, name)
        assert [g["title"] for g in figures] == [f"Anomaly maps: {r.name}" for r in spec.rows], (method, name)
        assert all(g["panels"][0]["media_keys"] == ["test/figures/cell", "test/figures/grass"] for g in figures)
        assert len(data["runs"]) == len(spec.rows) * len(spec.ks) and f"Metric('Group') = '{name}'" in \
            bars["runset"]["filters"]
        built = report.build_report(json.loads(json.dumps(data)))  # what the JSON file gives back, offline
        assert isinstance(built, wr.Report) and len(built.blocks) == 2 * len(data["blocks"])


TINY = ["--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64",
        "--data.init_args.categories=[cell]", "--trainer.enable_progress_bar=false"]


@pytest.mark.slow
def test_slurm_launcher_end_to_end_with_submitit_local_executor(builtin_cache, tmp_path, monkeypatch, capsys) -> None:
    """Real jobs: submitit's local executor runs one job per row, each a real ``python -m src.run``."""
    from src.tables.cluster import ClusterOptions
    from src.tables.records import scan_runs, select_rows

    spec = _spec(tmp_path)
    monkeypatch.setattr(launch, "load_ablation", lambda method, table: spec)
    monkeypatch.setattr(launch, "reference_path", lambda method, table: tmp_path / "ref.csv")
    _reference(tmp_path)
    root = tmp_path / "runs"
    folder = root / "tables" / "submitit" / "clip-demo"
    options = ClusterOptions(folder=folder, cluster="local", time_min=30, poll_s=1.0)
    table, failures = launch.ablate("clip", "demo", runs_root=root, overrides=TINY, log=False, cluster=options)
    assert failures == []
    rows = select_rows(scan_runs(root), "clip", "demo")
    assert sorted(rows) == [("base", None), ("full", None)] and all(len(v) == 1 for v in rows.values())
    for line, name in zip(table.rows, ("base", "full"), strict=True):
        result = rows[(name, None)][0].results
        assert result["meta"]["ablation"] == {"table": "demo", "row": name}
        assert line[3] == f"{100 * result['mean']['image_auroc']:.1f}"
        assert line[5] == f"{100 * result['mean']['pixel_auroc']:.1f}"
    # One job each, with submitit's own logs; the run directories are ordinary ones.
    jobs = sorted(folder.glob("*_0_log.out"))
    assert len(jobs) == 2, sorted(p.name for p in folder.iterdir())
    assert all("run: " in p.read_text() for p in jobs)
    out = capsys.readouterr().out
    assert "submitted 2 job(s) (local)" in out and re.search(r"\[\d/2\] clip demo/base \(job \d+\)", out)
    # Everything finished: a second call submits nothing and gives the same table.
    again, _ = launch.ablate("clip", "demo", runs_root=root, overrides=TINY, log=False, cluster=options)
    assert again.rows == table.rows and len(sorted(folder.glob("*_0_log.out"))) == 2
