"""Failures run for real through `python -m src.run` (the command behind `make train`).

A training process killed mid-epoch and resumed, corrupt files in a dataset, a NaN loss and
config mistakes: each must end in a clear outcome and never lose or overwrite a result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from src.faults import KILL_ENV, NAN_ENV

REPO = Path(__file__).resolve().parents[1]
FAST = ["--trainer.enable_progress_bar=false"]
TINY_CLIP = ["--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64", *FAST]
TINY_AFR = [
    "--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64", "--model.init_args.layers=[2,3,4]",
    "--model.init_args.sp_source=resnet18", "--model.init_args.sp_cnn_pretrained=none",
    "--data.init_args.categories=[cell]", "--data.init_args.aux_categories=[brick,coins]",
    "--trainer.max_epochs=2", "--trainer.limit_train_batches=3", *FAST,
]


def launch(args: list[str], runs: Path, env: dict[str, str] | None = None, timeout: int = 600):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ADSUITE_RUN_DIR", None)
    return subprocess.run([sys.executable, "-m", "src.run", "--runs-root", str(runs), *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


def run_dir_of(result: subprocess.CompletedProcess) -> Path:
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("run: "), result.stdout[-2000:] + result.stderr[-2000:]
    return Path(last[5:]) if Path(last[5:]).is_absolute() else REPO / last[5:]


def trainable_state(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"]


def test_killed_run_resumes_to_the_same_weights_and_metrics(builtin_cache: str, tmp_path: Path) -> None:
    straight = launch(["--method", "afr", "--", *TINY_AFR], tmp_path / "a")
    assert straight.returncode == 0, straight.stderr[-3000:]
    reference = run_dir_of(straight)

    killed = launch(["--method", "afr", "--", *TINY_AFR], tmp_path / "b", env={KILL_ENV: "4"})
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL in epoch 1, after epoch 0's checkpoint
    (interrupted,) = (tmp_path / "b").iterdir()
    assert (interrupted / "checkpoints" / "last.ckpt").is_file() and not (interrupted / "metrics.json").exists()
    assert torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0

    resumed = launch(["--resume", str(interrupted)], tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_dir_of(resumed) == interrupted, "resuming continues in the interrupted run's own directory"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [interrupted.name]
    assert "resumed" in (interrupted / "resumed.log").read_text()

    a, b = trainable_state(reference), trainable_state(interrupted)
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (reference, interrupted))
    for key, value in ma["mean"].items():
        assert value is None and mb["mean"][key] is None or abs(value - mb["mean"][key]) <= 1e-6, key
    assert mb["meta"]["resumed_from"] == str(interrupted)
    # Checkpoints hold trainable parameters only: no frozen CLIP or CNN weights.
    assert not any(".backbone." in k or k.startswith("model.backbone") for k in b)


def test_nan_loss_stops_with_step_and_terms(builtin_cache: str, tmp_path: Path) -> None:
    result = launch(["--method", "afr", "--", *TINY_AFR], tmp_path, env={NAN_ENV: "1"})
    assert result.returncode != 0
    assert "Non-finite loss at global step 1" in result.stderr
    assert "terms" in result.stderr and "partial logs and checkpoints are kept in" in result.stderr
    (run_dir,) = tmp_path.iterdir()
    assert not (run_dir / "metrics.json").exists()


@pytest.fixture()
def folder_dataset(builtin_cache: str, tmp_path: Path) -> Path:
    from datamodules.builtin import ensure_builtin

    source = Path(ensure_builtin(None))
    root = tmp_path / "data"
    shutil.copytree(source / "cell", root / "cell")
    return root


def test_corrupt_image_is_reported_before_any_work(folder_dataset: Path, tmp_path: Path) -> None:
    victim = sorted((folder_dataset / "cell" / "test" / "good").iterdir())[0]
    victim.write_bytes(b"not a png at all")
    result = launch(["--method", "clip", "--data", "folder", "--data-root", str(folder_dataset), "--", *TINY_CLIP],
                    tmp_path / "runs")
    assert result.returncode != 0
    assert str(victim) in result.stderr and "Testing" not in result.stderr


def test_mask_of_wrong_size_names_both_files(folder_dataset: Path, tmp_path: Path) -> None:
    mask = sorted((folder_dataset / "cell" / "ground_truth").rglob("*.png"))[0]
    cv2.imwrite(str(mask), np.zeros((7, 9), np.uint8))
    result = launch(["--method", "clip", "--data", "folder", "--data-root", str(folder_dataset), "--", *TINY_CLIP],
                    tmp_path / "runs")
    assert result.returncode != 0
    assert mask.name in result.stderr and mask.stem.removesuffix("_mask") in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--method", "clip", "--", "--model.init_args.num_stagez=2"], "valid --model.init_args options"),
        (["--method", "clip", "--", "--data.init_args.categories=[cel]"], "cel"),
        (["--method", "clip", "--", "--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=70"],
         "multiple of"),
        (["--method", "clip", "--", "--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64",
          "--model.init_args.layers=[2,9]"], "1..4"),
        (["--method", "clip", "--k", "100", "--", *TINY_CLIP], "100"),
    ],
)
def test_config_errors_are_rejected_with_the_valid_choices(builtin_cache: str, tmp_path: Path, args: list[str],
                                                           expected: str, capsys: pytest.CaptureFixture) -> None:
    from src import run

    try:
        code, message = run.main(["--runs-root", str(tmp_path), *args]), ""
    except SystemExit as err:  # jsonargparse rejects unknown options this way
        code, message = err.code, ""
    except Exception as err:  # noqa: BLE001 - the error a user sees
        code, message = 1, str(err)
    captured = capsys.readouterr()
    assert code != 0
    assert expected in message + captured.err, (message + captured.err)[-2000:]
    assert not list(tmp_path.rglob("checkpoints")) and not list(tmp_path.rglob("metrics.json"))
