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

from src.launch.lock import RunLock
from tests.faults import CALLBACKS, KILL_ENV, NAN_ENV, TERM_ENV

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FAST = ["--trainer.enable_progress_bar=false"]
TINY_CLIP = ["--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64", *FAST]
TINY_AFR = [
    "--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64", "--model.init_args.layers=[2,3,4]",
    "--model.init_args.sp_source=resnet18", "--model.init_args.sp_cnn_pretrained=none",
    "--data.init_args.categories=[cell]", "--data.init_args.aux_categories=[brick,coins]",
    "--trainer.max_epochs=2", "--trainer.limit_train_batches=3", *FAST,
]


def launch(args: list[str], runs: Path, env: dict[str, str | None] | None = None, timeout: int = 600):
    full_env = {**os.environ, **CALLBACKS, **(env or {})}
    full_env.pop("ADSUITE_RUN_DIR", None)
    full_env = {k: v for k, v in full_env.items() if v is not None}  # None: unset it
    return subprocess.run([sys.executable, "-m", "src.run", "--runs-root", str(runs), *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout, check=False)


def run_dir_of(result: subprocess.CompletedProcess) -> Path:
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("run: "), result.stdout[-2000:] + result.stderr[-2000:]
    return Path(last[5:]) if Path(last[5:]).is_absolute() else REPO / last[5:]


def trainable_state(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


@pytest.fixture(scope="module")
def straight_afr(builtin_cache: str, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    """One uninterrupted tiny AFR run: the reference every interrupted-and-resumed run must match."""
    straight = launch(["--method", "afr", "--", *TINY_AFR], tmp_path_factory.mktemp("straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    return straight


def assert_same_run(reference: Path, resumed: Path) -> None:
    """Same trainable weights (1e-6) and the same metrics (1e-6) as the uninterrupted run."""
    a, b = trainable_state(reference), trainable_state(resumed)
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (reference, resumed))
    for key, value in ma["mean"].items():
        assert value is None and mb["mean"][key] is None or abs(value - mb["mean"][key]) <= 1e-6, key


def test_killed_run_resumes_to_the_same_weights_and_metrics(straight_afr: subprocess.CompletedProcess,
                                                            tmp_path: Path) -> None:
    reference = run_dir_of(straight_afr)

    killed = launch(["--method", "afr", "--", *TINY_AFR], tmp_path / "b", env={KILL_ENV: "4"})
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL in epoch 1, after epoch 0's checkpoint
    (interrupted,) = (tmp_path / "b").iterdir()
    assert (interrupted / "checkpoints" / "last.ckpt").is_file() and not (interrupted / "metrics.json").exists()
    assert torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0

    resumed = launch(["--resume", str(interrupted)], tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert run_dir_of(resumed) == interrupted, "resuming continues in the interrupted run's own directory"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [interrupted.name]
    assert "resumed" in (interrupted / "resumed.log").read_text()

    assert_same_run(reference, interrupted)
    assert json.loads((interrupted / "metrics.json").read_text())["meta"]["resumed_from"] == str(interrupted)
    # Checkpoints hold trainable parameters only: no frozen CLIP or CNN weights.
    assert not any(".backbone." in k or k.startswith("model.backbone") for k in trainable_state(interrupted))


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
    # One clear line and where the traceback went, not 40-100 lines of it.
    assert "Traceback (most recent call last)" not in result.stderr
    (log,) = (tmp_path / "runs").glob("*/error.log")
    assert f"(full traceback in {log})" in result.stderr and "Traceback (most recent call last)" in log.read_text()


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


# ---------------------------------------------------------------------- pre-emption, resume, rerun
def test_sigterm_exits_non_zero_and_resumes_exactly(straight_afr: subprocess.CompletedProcess,
                                                    tmp_path: Path) -> None:
    stopped = launch(["--method", "afr", "--", *TINY_AFR], tmp_path / "runs", env={TERM_ENV: "4"})
    assert stopped.returncode == 143, stopped.stderr[-3000:]  # 128 + SIGTERM: schedulers see a failure
    (run,) = (tmp_path / "runs").iterdir()
    assert f"stopped by SIGTERM; checkpoints are kept in {run}. Continue with: make train RESUME={run}" \
        in stopped.stderr
    assert not (run / "metrics.json").exists()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    stale = run / "spill" / "anomaly-metrics-stale"  # what a kill -9 during evaluation leaves
    stale.mkdir(parents=True)

    resumed = launch(["--resume", str(run)], tmp_path / "runs")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(run_dir_of(straight_afr), run)
    assert not stale.exists() and not list((run / "spill").iterdir())

    # The finished run is never re-tested or rewritten by a second RESUME.
    before = (run / "metrics.json").read_bytes()
    again = launch(["--resume", str(run)], tmp_path / "runs")
    assert again.returncode == 2 and "this run finished; its results are in" in again.stderr
    assert (run / "metrics.json").read_bytes() == before

    # Rerun from the run's config: its trained weights, into a new directory, nothing in the cwd.
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    rerun = subprocess.run([sys.executable, "-m", "src", "test", "--config", str(run / "config.yaml")], cwd=cwd,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert list(cwd.iterdir()) == []
    (new,) = [p for p in (tmp_path / "runs").iterdir() if p != run]
    assert json.loads((new / "rerun.json").read_text())["ckpt_path"] == str(run / "checkpoints" / "last.ckpt")
    ours, theirs = (json.loads((d / "metrics.json").read_text())["mean"] for d in (run, new))
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        assert value is None and theirs[key] is None or abs(value - theirs[key]) <= 1e-6, key


def test_rerun_without_weights_is_refused(straight_afr: subprocess.CompletedProcess, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    shutil.copy(run_dir_of(straight_afr) / "config.yaml", config)
    result = subprocess.run([sys.executable, "-m", "src", "test", "--config", str(config)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "without --ckpt_path would score untrained weights" in result.stderr
    assert not (tmp_path / "metrics.json").exists()


@pytest.fixture()
def interrupted_copy(straight_afr: subprocess.CompletedProcess, tmp_path: Path) -> Path:
    """The straight run as if it had been interrupted: no metrics.json, its checkpoint kept."""
    copy = tmp_path / "runs" / "interrupted"
    shutil.copytree(run_dir_of(straight_afr), copy, ignore=shutil.ignore_patterns("wandb", "metrics.*"))
    return copy


def test_resume_with_a_garbage_checkpoint_names_the_file(interrupted_copy: Path) -> None:
    ckpt = interrupted_copy / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    result = launch(["--resume", str(interrupted_copy)], interrupted_copy.parent)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"error: {ckpt} is not a readable checkpoint" in result.stderr
    assert "please file an issue" not in result.stderr and "Traceback" not in result.stderr


def test_concurrent_resume_is_refused(interrupted_copy: Path) -> None:
    with RunLock(interrupted_copy):
        result = launch(["--resume", str(interrupted_copy)], interrupted_copy.parent)
    assert result.returncode == 2 and "is in use by another process" in result.stderr
    assert not (interrupted_copy / "metrics.json").exists()


@pytest.mark.parametrize(("extra", "expected"), [
    (["--method", "fb"], "METHOD=fb (the run has afr)"),
    (["--", "--trainer.max_epochs=5"], "ARGS=--trainer.max_epochs=5"),
])
def test_resume_with_other_options_is_refused(interrupted_copy: Path, extra: list[str], expected: str) -> None:
    result = launch(["--resume", str(interrupted_copy), *extra], interrupted_copy.parent)
    assert result.returncode == 2 and expected in result.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["--method", "clip", "--seeds", "0,0"], "more than once"),
    (["--method", "afr", "--", "--model.init_args.lr=-1"], "--model.init_args.lr=-1.0 is out of range"),
    (["--method", "clip", "--", "--trainer.max_epoch=1"], "unrecognized arguments: --trainer.max_epoch=1"),
    (["--metho", "clip"], "METHOD is required"),  # not read as --method
    (["--method", "clip", "--", "--model.class_path=subprocess.Popen"], "outside the suite"),
])
def test_bad_requests_stop_before_a_run_directory_exists(builtin_cache: str, tmp_path: Path, args: list[str],
                                                         expected: str, capsys: pytest.CaptureFixture) -> None:
    from src import run

    code = run.main(["--runs-root", str(tmp_path / "runs"), *args])
    assert code == 2 and expected in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_limit_batches_int_means_batches(builtin_cache: str) -> None:
    from src import run
    from src.cli import SuiteCLI, build_cli

    class _Parse(SuiteCLI):
        def instantiate_classes(self) -> None:
            return None

        def _set_seed(self) -> None:
            return None

    args = run.parse_args(["--method", "clip", "--", "--trainer.limit_train_batches=1",
                           "--trainer.limit_test_batches=0.5"])
    run.validate(args)
    files, _, overrides = run.compose(args, 0)
    cli = build_cli([*(a for f in files for a in ("--config", str(f))), *overrides], run=False, cli_class=_Parse)
    assert cli.config.trainer.limit_train_batches == 1 and type(cli.config.trainer.limit_train_batches) is int
    assert cli.config.trainer.limit_test_batches == 0.5


# ---------------------------------------------------------------------- output a user reads
NOISE = ("Seed set to 0\nSeed set to 0", "anonymous setting", "litlogger", "LeafSpec", "module(s) in eval mode",
         "log_every_n_steps", "No pretrained weights loaded")


@pytest.fixture(scope="module")
def plain_clip(builtin_cache: str, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[subprocess.CompletedProcess, float]:
    import time

    started = time.monotonic()
    result = launch(["--method", "clip", "--", *TINY_CLIP], tmp_path_factory.mktemp("clip"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result, time.monotonic() - started


def test_plain_runs_print_nothing_a_user_cannot_act_on(plain_clip: tuple, straight_afr: subprocess.CompletedProcess
                                                       ) -> None:
    for result in (plain_clip[0], straight_afr):
        text = result.stdout + result.stderr
        assert [n for n in NOISE if n in text] == [], text[-3000:]
        assert text.count("RANDOM-INIT BACKBONE") == 1
        assert "upload it later with: wandb sync " in result.stdout
    clip_meta = json.loads((run_dir_of(plain_clip[0]) / "metrics.json").read_text())["meta"]
    assert clip_meta["data"]["aux_dataset"] is None and "trains on" not in plain_clip[0].stderr


def test_unreachable_wandb_falls_back_to_offline(plain_clip: tuple, tmp_path: Path) -> None:
    import time

    env = {"WANDB_API_KEY": "0" * 40, "WANDB_BASE_URL": "http://unresolvable.invalid", "WANDB_MODE": None}
    started = time.monotonic()
    result = launch(["--method", "clip", "--", *TINY_CLIP], tmp_path, env=env)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert "W&B: cannot reach http://unresolvable.invalid" in result.stderr
    assert "falling back to offline logging" in result.stderr
    assert (run_dir_of(result) / "metrics.json").is_file()
    assert wall <= plain_clip[1] + 60, (wall, plain_clip[1])


def test_partial_evaluation_is_flagged(builtin_cache: str, tmp_path: Path) -> None:
    result = launch(["--method", "clip", "--", *TINY_CLIP, "--data.init_args.categories=[cell,coffee]",
                     "--trainer.limit_test_batches=1"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.loads((run_dir_of(result) / "metrics.json").read_text())["meta"]
    assert meta["partial"] == {"n_images_scored": 8, "n_test_images": 40, "limit_test_batches": 1}
    assert "PARTIAL EVALUATION" in result.stdout
