"""A method added the documented way (docs/adding-a-method.md) runs through every entry point.

``tests/toy_method`` is a package outside ``src/methods`` registered with
``ADSUITE_METHOD_MODULES``: its Lightning module, its ``SPEC``, a paper YAML, an ablation grid and a
reference CSV. Nothing in the launcher, the tables or the benchmark names it, yet ``make train``,
``make ablate``, ``make compare`` and ``make bench`` run it (the same entry points the Makefile
calls: ``src.run.main``, ``src.tables.__main__.main``, ``python -m src.bench``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src import registry

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
TOY = {registry.EXTRA_MODULES_ENV: "tests.toy_method.spec", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in TOY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ADSUITE_RUN_DIR", raising=False)


def test_make_train_fits_and_tests_the_toy_method(toy, tmp_path: Path, capsys) -> None:
    from src import run

    assert "toy" in registry.names() and registry.compared("zero-shot")[-1] == "toy"
    assert run.main(["--method", "toy", "--runs-root", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    run_dir = Path(last.removeprefix("run: "))
    run_dir = run_dir if run_dir.is_absolute() else Path.cwd() / run_dir
    assert last.startswith("run: ") and run_dir.parent == tmp_path and run_dir.name.endswith("-toy-builtin")
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["meta"]["method"] == "toy" and result["meta"]["random_init"] is True
    assert set(result["categories"]) == {"cell"} and 0.0 <= result["mean"]["image_auroc"] <= 1.0
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()  # it trained: the head's weights were saved
    assert result["meta"]["request_hash"] == run.request_hash_for(["--method", "toy"])


def test_make_ablate_and_compare_run_the_toy_method(toy, tmp_path: Path) -> None:
    from src.tables import __main__ as tables

    root = str(tmp_path)
    assert tables.main(["--runs-root", root, "--no-wandb", "ablate", "--method", "toy", "--table", "lr"]) == 0
    table = (tmp_path / "tables" / "toy-lr.csv").read_text().splitlines()
    assert table[0].startswith("row,lr,I-AUROC,I-AUROC paper") and [r.split(",")[0] for r in table[1:]] == [
        "fast", "default"]
    assert tables.main(["--runs-root", root, "--no-wandb", "compare", "--methods", "toy"]) == 0
    compared = (tmp_path / "tables" / "compare-zero-shot.csv").read_text()
    assert "toy (random-init) I-AUROC" in compared and "mvtec,published,50.0" in compared  # the toy's own reference CSV


def test_make_bench_measures_the_toy_method(toy, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "src.bench", "--quick", "--methods", "toy", "--runs", "1",
                          "--batches", "1", "--train-steps", "1", "--threads", "1", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])["rows"]
    assert [r["method"] for r in rows] == ["toy"] and rows[0]["ratio_vs_backbone"] > 0
    report = (tmp_path / "latest.md").read_text()
    assert "| Toy | tiny-vit | 64 |" in report and "time<=2.0x" in report
