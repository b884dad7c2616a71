"""Published numbers beside ours: the evaluated dataset's row, and AUPRO differenced like with like."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.tables import launch
from src.tables.build import ablation_table, compare_table
from src.tables.records import scan_runs, select_rows
from src.tables.spec import SpecError, load_ablation, load_reference

GRID = """
table: demo
title: demo
paper_dataset: mvtec
metrics: [image_auroc, pixel_aupro]
label_columns: []
rows:
  - name: base
    overrides: {model.init_args.num_stages: 1}
"""
REFERENCE = """# pixel_aupro_variant: anomalyclip
row,dataset,image_auroc,pixel_aupro
base,mvtec,90.0,80.0
base,visa,70.0,60.0
"""


def _run(root: Path, name: str, dataset: str, image: float, aupro: float, variant: str, method: str = "fb",
         table: str = "demo", row: str = "base") -> None:
    run = root / name
    run.mkdir(parents=True)
    meta = {"method": method, "profile": "paper", "dataset": dataset, "random_init": False, "pretrained": "openai",
            "request_hash": name, "overrides": [], "aupro_variant": variant, "ablation": {"table": table, "row": row}}
    mean = {"image_auroc": image, "pixel_aupro": aupro}
    (run / "metrics.json").write_text(json.dumps({"mean": mean, "categories": {"c1": mean}, "meta": meta}))


def _table(tmp_path: Path, dataset: str, variant: str):
    grid, ref = tmp_path / "demo.yaml", tmp_path / "demo.csv"
    grid.write_text(GRID)
    ref.write_text(REFERENCE)
    root = tmp_path / f"runs-{dataset}-{variant}"
    _run(root, "r", dataset, 0.75, 0.50, variant)
    table = ablation_table(load_ablation("fb", "demo", grid), select_rows(scan_runs(root), "fb", "demo"),
                           load_reference(ref))
    return {h: c for h, c in zip(table.header, table.rows[0], strict=True)}, table


def test_ablation_shows_the_published_row_of_the_evaluated_dataset(tmp_path: Path) -> None:
    cells, table = _table(tmp_path, "visa", "anomalyclip")
    assert cells["I-AUROC paper"] == "70.0" and cells["P-AUPRO paper"] == "60.0"  # VisA's row, not MVTec's
    assert cells["I-AUROC Δ"] == "+5.0" and cells["P-AUPRO Δ"] == "-10.0"
    assert any("published numbers on visa" in n for n in table.notes)
    cells, _ = _table(tmp_path, "mvtec", "anomalyclip")
    assert cells["I-AUROC paper"] == "90.0" and cells["I-AUROC Δ"] == "-15.0" and cells["P-AUPRO Δ"] == "-30.0"


def test_exact_aupro_is_not_differenced_against_the_200_threshold_one(tmp_path: Path) -> None:
    cells, table = _table(tmp_path, "visa", "exact")
    assert cells["I-AUROC Δ"] == "+5.0"
    assert cells["P-AUPRO"] == "50.0" and cells["P-AUPRO paper"] == "60.0" and cells["P-AUPRO Δ"] == ""
    note = next(n for n in table.notes if n.startswith("P-AUPRO"))
    assert "ours is exact (the exact AUPRO), the published one the 200-threshold approximation" in note
    assert "--trainer.callbacks.init_args.aupro_variant=anomalyclip" in note


def test_compare_table_aupro_like_with_like(tmp_path: Path) -> None:
    ref = tmp_path / "main.csv"
    ref.write_text(REFERENCE.replace("base,", "fb,"))
    for variant in ("exact", "anomalyclip"):
        root = tmp_path / variant
        _run(root, "fb-visa", "visa", 0.75, 0.50, variant, table="", row="")
        record = scan_runs(root)[0]
        table = compare_table("cmp", {"visa": {"fb": record}}, {"fb": load_reference(ref)})
        rows = {(r[0], r[1]): dict(zip(table.header, r, strict=True)) for r in table.rows}
        diff = rows[("visa", "Δ ours − published")]
        assert diff["fb I-AUROC"] == "+5.0"
        assert diff["fb P-AUPRO"] == ("-10.0" if variant == "anomalyclip" else "")
        assert any(n.startswith("fb: P-AUPRO: ours is exact") for n in table.notes) == (variant == "exact")


def test_reference_variant_directive(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("row,dataset,pixel_aupro\nx,mvtec,1\n")
    assert load_reference(path).aupro_variant == "unknown"
    path.write_text("# pixel_aupro_variant: 200\nrow,dataset,pixel_aupro\nx,mvtec,1\n")
    valid = "\\['exact', 'anomalyclip', 'unknown'\\]"
    with pytest.raises(SpecError, match=f"pixel_aupro_variant '200' is not one of {valid}"):
        load_reference(path)
    for table in ("main", "text_strategies", "mvfbe_views", "bg_tokens", "incremental"):
        assert load_reference(launch.reference_path("fb", table)).aupro_variant == "anomalyclip"
