"""The launcher behind `make train`: option checks, run directories, results, seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src import run

TINY = ["--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64",
        "--data.init_args.categories=[cell]", "--trainer.enable_progress_bar=false"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "afrr"], "METHOD='afrr' is not a method; valid: clip, afr, fb, vtfusion"),
        (["--method", "clip", "--profile", "fast"], "valid: quick, paper"),
        (["--method", "clip", "--data", "mvtecc"], "valid: builtin"),
        (["--method", "clip", "--data", "mvtec"], "needs DATA_ROOT"),
        (["--method", "clip", "--data", "folder", "--data-root", "/nonexistent/x"], "does not exist"),
        (["--method", "clip", "--k", "0"], "positive number of shots"),
        (["--method", "clip", "--seeds", "0,a"], "comma-separated integers"),
    ],
)
def test_bad_options_fail_before_any_work(argv: list[str], message: str, capsys: pytest.CaptureFixture,
                                          tmp_path: Path) -> None:
    assert run.main([*argv, "--runs-root", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "no run directory for a rejected command"


def test_clip_run_end_to_end(builtin_cache: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run.main(["--method", "clip", "--runs-root", str(tmp_path), "--", *TINY]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("run: ")
    run_dir = Path(out[-1][5:])
    if not run_dir.is_absolute():
        run_dir = Path.cwd() / run_dir
    assert run_dir.parent == tmp_path and run_dir.name.endswith("-clip-builtin")
    results = json.loads((run_dir / "metrics.json").read_text())
    assert set(results) == {"mean", "categories", "defect_types", "meta"}
    assert list(results["categories"]) == ["cell"]
    assert 0.0 <= results["mean"]["image_auroc"] <= 1.0
    meta = results["meta"]
    assert meta["method"] == "clip" and meta["random_init"] is True and meta["backbone"] == "tiny-vit"
    assert meta["seed"] == 0 and meta["request_hash"] and meta["wandb_run"]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "metrics.csv").is_file()
    assert any(line.startswith("cell") for line in out) and "RANDOM-INIT" in "\n".join(out)

    # A second identical run never reuses the directory.
    assert run.main(["--method", "clip", "--runs-root", str(tmp_path), "--", *TINY]) == 0
    second = Path(capsys.readouterr().out.strip().splitlines()[-1][5:])
    assert second.name != run_dir.name and (run_dir / "metrics.json").is_file()


def test_seeds_write_summary(builtin_cache: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run.main(["--method", "clip", "--seeds", "0,1", "--runs-root", str(tmp_path), "--", *TINY]) == 0
    group = Path(capsys.readouterr().out.strip().splitlines()[-1][5:])
    summary = json.loads((group / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["runs"]) == 2
    assert (group / "seed0" / "metrics.json").is_file() and (group / "seed1" / "metrics.json").is_file()
    assert summary["std"]["image_auroc"] is not None


def test_merge_category_results_recomputes_means() -> None:
    parts = {
        "a": {"categories": {"a": {"image_auroc": 0.5, "pixel_auroc": None}}, "meta": {"k_shot_files": {"a": ["x"]}}},
        "b": {"categories": {"b": {"image_auroc": 1.0, "pixel_auroc": 0.8}}, "meta": {"k_shot_files": {"b": ["y"]}}},
    }
    merged = run.merge_category_results(parts)
    assert merged["mean"]["image_auroc"] == pytest.approx(0.75)
    assert merged["mean"]["pixel_auroc"] == pytest.approx(0.8)
    assert merged["meta"]["n_categories"]["pixel_auroc"] == 1
    assert merged["meta"]["k_shot_files"] == {"a": ["x"], "b": ["y"]}
