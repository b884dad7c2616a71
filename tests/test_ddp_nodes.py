"""Two simulated nodes x two processes (gloo), started as torchrun starts them, give one run.

Four ``python -m src.run --devices 2 --nodes 2`` processes get the environment torchrun sets on two
machines (``RANK``, ``LOCAL_RANK``, ``GROUP_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
``TORCHELASTIC_RUN_ID``, ``MASTER_ADDR``/``PORT``); nothing passes the run directory between them.
Expected: exactly one run directory (made by global rank 0), its metrics equal to a single-process
run of the same request to 1e-6, and the rank arithmetic of srun (``SLURM_PROCID``) right.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from src import rendezvous
from src.runs import is_rank_zero

REPO = Path(__file__).resolve().parents[1]
# Two categories of 20 test images: every rank evaluates a share of both.
TINY = ["--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64",
        "--data.init_args.categories=[cell, coffee]", "--trainer.enable_progress_bar=false",
        "--trainer.accelerator=cpu"]
NODES, PER_NODE = 2, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE",
                                                          "TORCHELASTIC_RUN_ID", "ADSUITE_RUN_DIR"}}
    env.update(ADSUITE_CACHE=cache, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1", **extra)
    return env


def _metrics(root: Path) -> tuple[list[Path], dict]:
    """The run directories under ``root`` (there must be exactly one) and its metrics."""
    runs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(runs) == 1, f"expected exactly one run directory, got {[p.name for p in runs]}"
    return runs, json.loads((runs[0] / "metrics.json").read_text())


@pytest.mark.ddp
def test_two_nodes_of_two_processes_make_one_run_with_the_metrics_of_one_process(builtin_cache, tmp_path) -> None:
    argv = [sys.executable, "-m", "src.run", "--method", "clip", "--runs-root"]
    single = tmp_path / "single"
    done = subprocess.run([*argv, str(single), "--", *TINY], cwd=REPO, env=_env(builtin_cache),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    multi = tmp_path / "multi"
    port, run_id = _free_port(), f"test-{uuid.uuid4().hex[:8]}"
    procs = []
    for rank in range(NODES * PER_NODE):
        env = _env(builtin_cache, RANK=str(rank), LOCAL_RANK=str(rank % PER_NODE), GROUP_RANK=str(rank // PER_NODE),
                   NODE_RANK=str(rank // PER_NODE), WORLD_SIZE=str(NODES * PER_NODE),
                   LOCAL_WORLD_SIZE=str(PER_NODE), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   TORCHELASTIC_RUN_ID=run_id, TORCHELASTIC_RESTART_COUNT="0")
        cmd = [*argv, str(multi), "--devices", str(PER_NODE), "--nodes", str(NODES), "--", *TINY]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
        if rank == 0:
            time.sleep(1.0)  # the others start later, as on a real cluster: they must wait for rank 0
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for rank, (proc, out) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, f"rank {rank}:\n{out[-4000:]}"
    assert [o.strip().splitlines()[-1].startswith("run: ") for o in outputs] == [True, False, False, False]

    one_runs, one = _metrics(single)
    runs, four = _metrics(multi)
    assert len(one_runs) == 1 and len(runs) == 1  # exactly one run directory for the four processes
    config = yaml.safe_load((runs[0] / "config.yaml").read_text())
    assert config["trainer"]["num_nodes"] == NODES and str(config["trainer"]["devices"]) == str(PER_NODE)
    assert four["meta"]["n_images"] == one["meta"]["n_images"] == 40
    assert four["categories"].keys() == one["categories"].keys() == {"cell", "coffee"}
    for name in ["cell", "coffee", "mean"]:
        a = one["mean"] if name == "mean" else one["categories"][name]
        b = four["mean"] if name == "mean" else four["categories"][name]
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-6), (name, key)
    assert list((multi / ".launch").glob("*.json"))  # the pointer the other ranks followed


def test_srun_ranks_and_launch_identity(monkeypatch) -> None:
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "TORCHELASTIC_RUN_ID", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    assert rendezvous.global_rank() == 0 and not rendezvous.launched_outside() and is_rank_zero()
    # srun, 8 tasks: the task's SLURM_PROCID is its global rank; Lightning sets no RANK there.
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert rendezvous.global_rank() == 5 and rendezvous.launched_outside() and not is_rank_zero()
    first = rendezvous.launch_identity()
    monkeypatch.setenv("SLURM_STEP_ID", "1")
    assert rendezvous.launch_identity() != first  # the next srun step is another launch
    # A one-task SLURM job (sbatch, a submitit job) is an ordinary single process.
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert rendezvous.global_rank() == 0 and not rendezvous.launched_outside() and is_rank_zero()


def test_other_ranks_wait_for_rank_zero_and_ignore_an_earlier_launch(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job1")
    monkeypatch.setenv("RANK", "1")
    pointer = rendezvous._pointer(tmp_path, "run:x")
    stale = tmp_path / "old-run"
    stale.mkdir()
    pointer.parent.mkdir(parents=True)
    # An earlier launch with the same identity left a pointer long ago: never followed.
    pointer.write_text(json.dumps({"run_dir": str(stale), "identity": rendezvous.launch_identity(),
                                   "purpose": "run:x", "created": time.time() - 3600}))
    with pytest.raises(TimeoutError, match="no run directory from rank 0 .*shared by every node"):
        rendezvous.shared_dir(tmp_path, "run:x", lambda: pytest.fail("only rank 0 makes it"), timeout_s=0.5)
    monkeypatch.setenv("RANK", "0")
    made = rendezvous.shared_dir(tmp_path, "run:x", lambda: (tmp_path / "new-run").mkdir() or tmp_path / "new-run")
    monkeypatch.setenv("RANK", "3")
    assert rendezvous.shared_dir(tmp_path, "run:x", lambda: pytest.fail("rank 3")) == made == tmp_path / "new-run"
    # Another purpose (the next seed) or another launch is another pointer.
    assert rendezvous._pointer(tmp_path, "run:y") != pointer
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job2")
    assert rendezvous._pointer(tmp_path, "run:x") != pointer


def test_nodes_without_an_outside_launcher_is_refused_before_any_work(monkeypatch, tmp_path, capsys) -> None:
    from src import run

    for key in ("TORCHELASTIC_RUN_ID", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    assert run.main(["--method", "clip", "--nodes", "2", "--runs-root", str(tmp_path)]) == 2
    assert "NODES=2: start every process with srun or torchrun" in capsys.readouterr().err
    assert run.main(["--method", "clip", "--nodes", "0", "--runs-root", str(tmp_path)]) == 2
    assert "NODES=0 must be >= 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    args = run.parse_args(["--method", "clip", "--devices", "2", "--nodes", "2"])
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    run.validate(args)
    assert run.launcher_overrides(args, {}, None)[-3:] == ["--trainer.devices=2", "--trainer.num_nodes=2",
                                                           "--trainer.strategy=ddp"]
