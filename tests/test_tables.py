"""Table builder: layout, mean ± std, published numbers beside, Δ rule, skip of finished rows."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from src.tables import launch
from src.tables.build import ablation_table, compare_table
from src.tables.records import scan_runs, select_rows
from src.tables.spec import SpecError, load_ablation, load_reference, to_cli

GRID = """
table: demo
title: "Demo Table 3: modules"
paper_dataset: mvtec
metrics: [image_auroc, pixel_auroc]
label_columns: [A, B]
rows:
  - name: base
    labels: {A: "", B: ""}
    overrides: {model.init_args.num_stages: 1}
  - name: full
    labels: {A: "✓", B: "✓"}
    overrides: {model.init_args.layers: [2, 4], model.init_args.few_shot: false}
"""
REFERENCE = "row,dataset,image_auroc,pixel_auroc\nbase,mvtec,89.1,88.4\nfull,mvtec,93.4,\n"


def _spec(tmp_path: Path, text: str = GRID):
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return load_ablation("clip", "demo", path)


def _run(root: Path, name: str, row: str, image: float, pixel: float, seed=None, profile="quick",
         random_init=True, dataset="builtin", table="demo", digest=None, overrides=()) -> Path:
    run = root / name
    run.mkdir(parents=True)
    meta = {"method": "clip", "profile": profile, "dataset": dataset, "seed": seed, "random_init": random_init,
            "pretrained": "none" if random_init else "laion400m_e31", "request_hash": digest or name,
            "overrides": [*overrides, *([f"--seed_everything={seed}"] if seed is not None else [])],
            "ablation": {"table": table, "row": row}}
    results = {"mean": {"image_auroc": image, "pixel_auroc": pixel},
               "categories": {"c1": {"image_auroc": image, "pixel_auroc": pixel}}, "meta": meta}
    (run / "metrics.json").write_text(json.dumps(results))
    stamp = time.time() + len(list(root.iterdir()))  # later runs are newer, independent of the clock
    os.utime(run / "metrics.json", (stamp, stamp))
    return run


def _reference(tmp_path: Path, text: str = REFERENCE):
    path = tmp_path / "ref.csv"
    path.write_text(text)
    return load_reference(path)


def test_layout_mean_std_and_reference_beside_without_difference_for_random_init(tmp_path) -> None:
    spec = _spec(tmp_path)
    _run(tmp_path / "runs", "r0", "base", 0.80, 0.60, seed=0)
    _run(tmp_path / "runs", "r1", "base", 0.90, 0.70, seed=1)
    _run(tmp_path / "runs", "r2", "full", 0.95, 0.75, seed=0)
    runs = select_rows(scan_runs(tmp_path / "runs"), "clip", "demo")
    table = ablation_table(spec, runs, _reference(tmp_path))
    assert table.header == ["row", "A", "B", "I-AUROC", "I-AUROC paper", "P-AUROC", "P-AUROC paper", "seeds", "weights"]
    assert table.rows[0] == ["base", "", "", "85.0 ± 7.1", "89.1", "65.0 ± 7.1", "88.4", "0,1", "random-init"]
    assert table.rows[1] == ["full", "✓", "✓", "95.0", "93.4", "75.0", "–", "0", "random-init"]
    assert not any("Δ" in h for h in table.header)
    markdown = table.to_markdown()
    assert "| base |   |   | 85.0 ± 7.1 | 89.1 |" in markdown and "random-init" in markdown
    assert table.to_csv().splitlines()[1] == "base,,,85.0 ± 7.1,89.1,65.0 ± 7.1,88.4,\"0,1\",random-init"


def test_difference_only_for_pretrained_paper_runs_on_the_paper_dataset(tmp_path) -> None:
    spec = _spec(tmp_path)
    root = tmp_path / "runs"
    _run(root, "r0", "base", 0.900, 0.850, profile="paper", random_init=False, dataset="mvtec")
    _run(root, "r1", "full", 0.950, 0.900, profile="paper", random_init=True, dataset="mvtec")
    table = ablation_table(spec, select_rows(scan_runs(root), "clip", "demo"), _reference(tmp_path))
    assert "I-AUROC Δ" in table.header and "P-AUROC Δ" in table.header
    base, full = (dict(zip(table.header, r, strict=True)) for r in table.rows)
    assert base["I-AUROC Δ"] == "+0.9" and base["P-AUROC Δ"] == "-3.4" and base["weights"] == "laion400m_e31"
    assert full["I-AUROC Δ"] == "" and full["weights"] == "random-init"
    # Pretrained but on another dataset than the paper's: nothing to difference.
    root2 = tmp_path / "runs2"
    _run(root2, "r0", "base", 0.9, 0.85, profile="paper", random_init=False, dataset="visa")
    table = ablation_table(spec, select_rows(scan_runs(root2), "clip", "demo"), _reference(tmp_path))
    assert not any("Δ" in h for h in table.header)
    assert table.rows[1][3] == "not run"


def test_newest_configuration_per_row_wins(tmp_path) -> None:
    root = tmp_path / "runs"
    _run(root, "a", "base", 0.5, 0.5, seed=0, overrides=["--old"])
    _run(root, "b", "base", 0.6, 0.6, seed=0, overrides=["--new"])
    _run(root, "c", "base", 0.8, 0.8, seed=1, overrides=["--new"])
    _run(root, "d", "base", 0.1, 0.1, table="other")
    rows = select_rows(scan_runs(root), "clip", "demo")
    assert [r.path.name for r in rows[("base", None)]] == ["b", "c"]


def test_ablate_skips_rows_whose_request_already_finished(tmp_path, monkeypatch) -> None:
    spec = _spec(tmp_path)
    monkeypatch.setattr(launch, "load_ablation", lambda method, table: spec)
    monkeypatch.setattr(launch, "reference_path", lambda method, table: tmp_path / "ref.csv")
    _reference(tmp_path)
    root = tmp_path / "runs"
    user = ["--model.init_args.backbone=tiny-vit"]
    base_argv = ["--method", "clip", "--profile", "quick", "--runs-root", str(root), "--ablation-table", "demo",
                 "--ablation-row", "base", "--", "--model.init_args.num_stages=1", *user]
    _run(root, "done-base", "base", 0.7, 0.6, digest=launch.request_hash_of(base_argv))
    _run(root, "same-hash-other-row", "full", 0.1, 0.1, digest=launch.request_hash_of(base_argv))
    launched: list[list[str]] = []

    def fake_launcher(argv):
        launched.append(list(argv))
        return _run(root, f"new{len(launched)}", argv[argv.index("--ablation-row") + 1], 0.9, 0.8,
                    digest=launch.request_hash_of(argv))

    monkeypatch.setattr(launch, "run_launcher", fake_launcher)
    table, failures = launch.ablate("clip", "demo", runs_root=root, overrides=user, log=False)
    assert failures == [] and len(launched) == 1
    assert launched[0][launched[0].index("--") + 1:] == [
        "--model.init_args.layers=[2, 4]", "--model.init_args.few_shot=false", *user]
    assert [r[3] for r in table.rows] == ["70.0", "90.0"]
    assert (root / "tables" / "clip-demo.md").read_text() == table.to_markdown()
    assert (root / "tables" / "clip-demo.csv").is_file()
    launch.ablate("clip", "demo", runs_root=root, overrides=user, log=False)
    assert len(launched) == 1  # everything finished: nothing reruns
    # A changed override is a new request.
    launch.ablate("clip", "demo", runs_root=root, overrides=[*user, "--model.init_args.temperature=0.1"], log=False)
    assert len(launched) == 3


def test_k_sweep_rows_and_reference_keys(tmp_path) -> None:
    spec = _spec(tmp_path, GRID.replace("rows:", "k: [2, 4]\nrows:"))
    assert spec.ks == [2, 4]
    ref = _reference(tmp_path, "row,dataset,k,image_auroc\nbase,mvtec,2,95.3\nbase@k4,mvtec,,95.1\n")
    assert ref[("base", "mvtec", 2, "")] == {"image_auroc": pytest.approx(0.953)}
    assert ref[("base", "mvtec", 4, "")] == {"image_auroc": pytest.approx(0.951)}
    table = ablation_table(spec, {}, ref)
    assert table.header[:4] == ["row", "A", "B", "k"]
    assert [(r[0], r[3], r[5]) for r in table.rows] == [("base", "2", "95.3"), ("full", "2", "–"),
                                                      ("base", "4", "95.1"), ("full", "4", "–")]


def test_bad_input_names_the_file_and_field(tmp_path) -> None:
    with pytest.raises(SpecError, match="metrics.*unknown"):
        _spec(tmp_path, GRID.replace("pixel_auroc]", "pixel_iou]"))
    with pytest.raises(SpecError, match="not in label_columns"):
        _spec(tmp_path, GRID.replace("{A: \"\", B: \"\"}", "{C: x}"))
    with pytest.raises(SpecError, match="unknown columns"):
        _reference(tmp_path, "row,dataset,iou\nx,mvtec,1\n")
    with pytest.raises(SpecError, match="tables of METHOD=clip"):
        load_ablation("clip", "no-such-table")
    with pytest.raises(SpecError, match="differs from the file name"):
        _spec(tmp_path, GRID.replace("table: demo", "table: other"))
    with pytest.raises(SpecError, match="'base' is repeated"):
        _spec(tmp_path, GRID.replace("name: full", "name: base"))
    with pytest.raises(SpecError, match="k must be a list of positive"):
        _spec(tmp_path, GRID.replace("rows:", "k: [2, 0]\nrows:"))
    with pytest.raises(SpecError, match="missing field 'rows'"):
        _spec(tmp_path, GRID.split("rows:")[0])
    flags = to_cli({"a.b": True, "c": [1, 2], "d": "x y", "e": 0.5})
    assert flags == ["--a.b=true", "--c=[1, 2]", "--d=x y", "--e=0.5"]


def test_shipped_grids_and_references_parse() -> None:
    spec = load_ablation("clip", "layers")
    assert len(spec.rows) >= 3 and all(r.overrides for r in spec.rows)
    ref = load_reference(launch.reference_path("clip", "main"))
    assert ref[("clip", "mvtec", None, "")]["image_auroc"] == pytest.approx(0.918)
    assert launch.protocol_overrides("k-shot") == ["--data.init_args.protocol=k-shot"]


def test_compare_table_domain_means_and_published_rows(tmp_path) -> None:
    root = tmp_path / "runs"
    for dataset, value in (("mvtec", 0.9), ("visa", 0.7)):
        for method in ("clip", "afr"):
            run = _run(root, f"{method}-{dataset}", "", value, value, table="", dataset=dataset, profile="paper",
                       random_init=method == "clip")
            data = json.loads((run / "metrics.json").read_text())
            data["meta"]["method"] = method
            (run / "metrics.json").write_text(json.dumps(data))
    records = {r.path.name: r for r in scan_runs(root)}
    results = {d: {m: records[f"{m}-{d}"] for m in ("clip", "afr")} for d in ("mvtec", "visa")}
    refs = {"clip": _reference(tmp_path, "row,dataset,image_auroc\nclip,mvtec,91.8\n"),
            "afr": load_reference(_write(tmp_path / "afr.csv", "row,dataset,image_auroc\nafr,mvtec,93.4\n"))}
    table = compare_table("cmp", results, refs)
    assert table.header[2] == "clip (random-init) I-AUROC" and "afr I-AUROC" in table.header
    rows = {(r[0], r[1]): dict(zip(table.header, r, strict=True)) for r in table.rows}
    assert rows[("mvtec", "c1")]["afr I-AUROC"] == "90.0"
    assert rows[("Industrial mean (2 datasets)", "mean")]["afr I-AUROC"] == "80.0"
    assert rows[("mvtec", "published")]["clip (random-init) I-AUROC"] == "91.8"
    diff = rows[("mvtec", "Δ ours − published")]
    assert diff["afr I-AUROC"] == "-3.4" and diff["clip (random-init) I-AUROC"] == ""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
