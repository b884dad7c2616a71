"""`make ablate` / `make compare` forward AUX and AUX_ROOT to every launcher run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from src.tables import __main__ as tables_cli
from src.tables import launch
from src.tables.spec import REPO


def _finished(root: Path, argv: list[str]) -> Path:
    """A finished run directory for ``argv`` (what the launcher would leave), without running it."""
    method = argv[argv.index("--method") + 1]
    data = argv[argv.index("--data") + 1]
    row = argv[argv.index("--ablation-row") + 1] if "--ablation-row" in argv else ""
    table = argv[argv.index("--ablation-table") + 1] if "--ablation-table" in argv else ""
    run = root / f"{method}-{data}-{row or 'main'}-{len(list(root.glob('*')))}"
    run.mkdir(parents=True)
    meta = {"method": method, "profile": "paper", "dataset": data, "random_init": True, "pretrained": "none",
            "request_hash": launch.request_hash_of(argv), "overrides": [], "ablation": {"table": table, "row": row}}
    (run / "metrics.json").write_text(json.dumps({"mean": {}, "categories": {}, "meta": meta}))
    return run


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, str]:
    for name in ("mvtec", "visa"):
        (tmp_path / name).mkdir()
    return {name: str(tmp_path / name) for name in ("mvtec", "visa")}


def test_ablate_forwards_aux_root_to_every_row(tmp_path: Path, folders: dict[str, str], monkeypatch) -> None:
    launched: list[list[str]] = []
    root = tmp_path / "runs"

    def fake(argv):
        launched.append(list(argv))
        return _finished(root, list(argv))

    monkeypatch.setattr(launch, "run_launcher", fake)
    code = tables_cli.main(["--runs-root", str(root), "--no-wandb", "ablate", "--method", "fb", "--table", "bg_tokens",
                            "--profile", "paper", "--data", "visa", "--data-root", folders["visa"],
                            "--aux-root", folders["mvtec"]])
    assert code == 0 and len(launched) == 3
    for argv in launched:
        assert argv[argv.index("--aux-root") + 1] == folders["mvtec"]
        assert "--aux" not in argv  # the method's pairing decides (MVTec for DATA=visa)


def test_compare_takes_one_aux_per_dataset(tmp_path: Path, folders: dict[str, str], monkeypatch) -> None:
    launched: list[list[str]] = []
    root = tmp_path / "runs"
    monkeypatch.setattr(launch, "run_launcher", lambda argv: launched.append(list(argv)) or _finished(root, argv))
    code = tables_cli.main(["--runs-root", str(root), "--no-wandb", "compare", "--profile", "paper",
                            "--methods", "fb", "--data", "mvtec,visa",
                            "--data-root", f"{folders['mvtec']},{folders['visa']}",
                            "--aux", "visa,mvtec", "--aux-root", f"{folders['visa']},{folders['mvtec']}"])
    assert code == 0
    pairs = [(a[a.index("--data") + 1], a[a.index("--aux") + 1], a[a.index("--aux-root") + 1]) for a in launched]
    assert pairs == [("mvtec", "visa", folders["visa"]), ("visa", "mvtec", folders["mvtec"])]


def test_compare_aux_count_must_match(tmp_path: Path, capsys) -> None:
    code = tables_cli.main(["--runs-root", str(tmp_path), "--no-wandb", "compare", "--data", "mvtec,visa",
                            "--aux-root", "/only/one"])
    assert code == 2
    assert "AUX_ROOT lists 1 entries for 2 datasets (DATA=mvtec,visa); give one per dataset" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["ablate", "compare"])
def test_makefile_forwards_aux(target: str) -> None:
    out = subprocess.run(["make", "-n", target, "METHOD=fb", "TABLE=incremental", "AUX=mvtec", "AUX_ROOT=/data/m"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.replace("\\\n", " ").splitlines() if "-m src.tables" in x)
    assert '--aux "mvtec"' in line and '--aux-root "/data/m"' in line


def test_compare_refuses_one_aux_root_for_two_pairings(tmp_path: Path, folders: dict[str, str], capsys) -> None:
    (tmp_path / "btad").mkdir()
    code = tables_cli.main(["--runs-root", str(tmp_path / "runs"), "--no-wandb", "compare", "--profile", "paper",
                            "--data", "folder", "--data-root", str(tmp_path / "btad"), "--aux-root", folders["mvtec"]])
    assert code == 2
    err = capsys.readouterr().err
    assert "DATA=folder: the methods' paper pairings train on different datasets" in err
    assert "afr: visa, fb: mvtec" in err and not (tmp_path / "runs").exists()
