"""``python -m src test --config runs/<name>/config.yaml``: the run's weights, a new run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from src.launch.errors import LaunchError
from src.launch.rerun import prepare, require_weights


def _run_dir(tmp_path: Path, ckpt: bytes | None = None) -> Path:
    run = tmp_path / "runs" / "20260101-000000-afr-builtin"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: {}\n")
    (run / "launch.json").write_text(json.dumps({"method": "afr", "data": "builtin"}))
    if ckpt is None:
        torch.save({"state_dict": {"w": torch.zeros(1)}}, run / "checkpoints" / "last.ckpt")
    else:
        (run / "checkpoints" / "last.ckpt").write_bytes(ckpt)
    return run


def test_rerun_loads_the_run_checkpoint_into_a_new_directory(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    argv, new = prepare(["test", "--config", str(run / "config.yaml")], tmp_path / "elsewhere")
    assert new is not None and new.parent == run.parent and new.name.endswith(f"-afr-builtin-test-of-{run.name}")
    assert argv == ["test", "--config", str(run / "config.yaml"), f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                    "--weights_only=true", f"--trainer.default_root_dir={new}"]
    record = json.loads((new / "rerun.json").read_text())
    assert record["source_run"] == str(run) and record["ckpt_path"] == str(run / "checkpoints" / "last.ckpt")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "launch.json"]


def test_rerun_keeps_an_explicit_checkpoint_and_output_folder(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    given = ["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(other),
             f"--trainer.default_root_dir={tmp_path / 'out'}"]
    argv, new = prepare(given, tmp_path)
    assert new is None and argv == [*given, "--weights_only=true"]


def test_rerun_with_a_damaged_checkpoint_names_it(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, ckpt=b"garbage")
    with pytest.raises(LaunchError, match=rf"{run / 'checkpoints' / 'last.ckpt'} is not a readable checkpoint"):
        prepare(["test", "--config", str(run / "config.yaml")], tmp_path)


def test_untrained_trainable_model_is_not_scored() -> None:
    trainable, frozen = type("M", (), {"is_trainable": True})(), type("M", (), {"is_trainable": False})()
    with pytest.raises(LaunchError, match="without --ckpt_path would score untrained weights"):
        require_weights(trainable, None, "test")
    require_weights(trainable, "x.ckpt", "test")
    require_weights(frozen, None, "test")
    require_weights(trainable, None, "fit")
