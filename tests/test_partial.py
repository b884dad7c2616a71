"""A partial evaluation is flagged and never mixed into a table; spills live under the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from src.metrics.callback import MetricsCallback, partial_evaluation
from src.run import merge_category_results, partial_banner
from src.tables.records import PartialRunError, scan_runs, select_rows


def test_partial_evaluation_counts_scored_against_the_split() -> None:
    trainer = SimpleNamespace(limit_test_batches=2)
    meta = {"n_images": 16, "data": {"n_test_images": 100}}
    assert partial_evaluation(meta, trainer) == {"n_images_scored": 16, "n_test_images": 100,
                                                 "limit_test_batches": 2}
    assert partial_evaluation({"n_images": 100, "data": {"n_test_images": 100}}, trainer) is None
    assert "PARTIAL EVALUATION" in partial_banner({"n_images_scored": 16})


def test_per_category_merge_keeps_the_partial_flag() -> None:
    part = {"categories": {}, "defect_types": {}, "meta": {}}
    cut = {"categories": {}, "defect_types": {}, "meta": {"partial": {"n_images_scored": 1}}}
    assert merge_category_results({"a": part, "b": cut})["meta"]["partial"] == {
        "categories": {"b": {"n_images_scored": 1}}}
    assert "partial" not in merge_category_results({"a": part})["meta"]


def test_per_category_merge_sums_trained_steps() -> None:
    def part(steps: int | None) -> dict:
        return {"categories": {}, "defect_types": {}, "meta": {"trained_steps": steps}}

    assert merge_category_results({"a": part(3), "b": part(4)})["meta"]["trained_steps"] == 7
    assert merge_category_results({"a": part(0), "b": part(0)})["meta"]["trained_steps"] == 0
    assert merge_category_results({"a": part(None), "b": part(None)})["meta"]["trained_steps"] is None


def _record(root: Path, name: str, partial: bool, seed: int) -> None:
    meta = {"request_hash": name, "method": "afr", "ablation": {"table": "components", "row": "base"},
            "seed": seed, "overrides": [f"--seed_everything={seed}"]}
    if partial:
        meta["partial"] = {"n_images_scored": 8, "n_test_images": 100}
    (root / name).mkdir(parents=True)
    (root / name / "metrics.json").write_text(json.dumps({"mean": {}, "categories": {}, "meta": meta}))


def test_tables_refuse_to_mix_partial_and_complete_runs(tmp_path: Path) -> None:
    _record(tmp_path, "a", partial=False, seed=0)
    _record(tmp_path, "b", partial=True, seed=1)
    with pytest.raises(PartialRunError, match=r"1 of 2 runs scored only part of their test split"):
        select_rows(scan_runs(tmp_path), "afr", "components")
    (tmp_path / "b" / "metrics.json").unlink()
    assert [r.path.name for r in select_rows(scan_runs(tmp_path), "afr", "components")[("base", None)]] == ["a"]


def test_spill_goes_under_the_run_directory(tmp_path: Path) -> None:
    callback = MetricsCallback()
    callback._start(SimpleNamespace(default_root_dir=str(tmp_path)))
    maps = np.zeros((1, 4, 4), np.float32)
    callback._metrics.update(maps, np.zeros(1), np.zeros((1, 4, 4)), np.zeros(1, np.int64), ["c"], ["good"],
                             np.arange(1))
    spill = callback._metrics._spill.directory
    assert spill is not None and spill.parent == tmp_path / "spill"
    callback._metrics.close()
    assert not spill.exists()
