"""``make ablate ROWS=``: only the named rows run; an unknown name stops before any run."""

from __future__ import annotations

import pytest

from src.tables import launch
from src.tables.__main__ import parse_args
from src.tables.spec import SpecError


def test_rows_option_is_parsed_and_forwarded():
    args = parse_args(["ablate", "--method", "afr", "--table", "components", "--rows", "base,full", "--", "--x=1"])
    assert (args.rows, args.overrides) == ("base,full", ["--x=1"])


def test_unknown_row_is_refused_before_running(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(launch, "run_launcher", lambda argv, *a, **k: ran.append(argv))
    with pytest.raises(SpecError, match=r"\['nope'\] not rows of afr/components; valid: base"):
        launch.ablate("afr", "components", runs_root=tmp_path, rows=["nope"], log=False)
    assert ran == []


def test_only_named_rows_run(tmp_path, monkeypatch):
    ran = []

    def fake(argv, *args, **kwargs):
        ran.append(argv[argv.index("--ablation-row") + 1])
        raise launch.RunFailedError("not run in this test")

    monkeypatch.setattr(launch, "run_launcher", fake)
    _, failures = launch.ablate("afr", "mpfa_m", runs_root=tmp_path, rows=["m1"], log=False)
    assert ran == ["m1"] and len(failures) == 1


def test_runs_root_default_follows_the_environment(monkeypatch, tmp_path):
    from src import run as launcher

    monkeypatch.setenv(launcher.RUNS_ROOT_ENV, str(tmp_path))
    assert launcher.parse_args(["--method", "clip"]).runs_root == str(tmp_path)
    assert parse_args(["table"]).runs_root == str(tmp_path)
    assert launcher.parse_args(["--method", "clip", "--runs-root", "x"]).runs_root == "x"  # the option still wins
    monkeypatch.delenv(launcher.RUNS_ROOT_ENV)
    assert launcher.parse_args(["--method", "clip"]).runs_root == str(launcher.REPO / "runs")
