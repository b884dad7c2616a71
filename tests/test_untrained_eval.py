"""``make train ... ARGS="--trainer.limit_train_batches=0"``: the documented untrained evaluation.

The before/after check of a method (evaluate the untrained model, train, evaluate again) is two
ordinary runs; the first must take no optimiser step, so its figures cannot depend on the
learning rate, and it says so in its recorded overrides.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src import run

UNTRAINED = "--trainer.limit_train_batches=0"
TINY = ["--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=64", "--model.init_args.layers=[2,4]",
        "--data.init_args.categories=[cell]", "--trainer.enable_progress_bar=false", "--trainer.max_epochs=1"]


def _run(tmp_path: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[Path, dict]:
    assert run.main(["--method", "linear", "--runs-root", str(tmp_path), "--", *TINY, *extra]) == 0
    out = capsys.readouterr().out
    untrained_banner = "UNTRAINED: no optimiser step" in out
    run_dir = Path(out.strip().splitlines()[-1][len("run: "):])
    run_dir = run_dir if run_dir.is_absolute() else Path.cwd() / run_dir
    results = json.loads((run_dir / "metrics.json").read_text())
    assert untrained_banner == (results["meta"]["trained_steps"] == 0)
    return run_dir, results


@pytest.mark.slow
def test_untrained_evaluation_takes_no_step(builtin_cache: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    first_dir, first = _run(tmp_path, capsys, UNTRAINED, "--model.init_args.lr=0.001")
    _, other_lr = _run(tmp_path, capsys, UNTRAINED, "--model.init_args.lr=0.5")
    _, trained = _run(tmp_path, capsys, "--trainer.limit_train_batches=1", "--model.init_args.lr=0.5")

    assert UNTRAINED in first["meta"]["overrides"]
    assert not (first_dir / "checkpoints" / "last.ckpt").exists(), "an untrained run saves no weights"
    assert first["mean"] == other_lr["mean"], "the learning rate changed an untrained evaluation"
    assert first["meta"]["trained_steps"] == other_lr["meta"]["trained_steps"] == 0
    assert trained["meta"]["trained_steps"] == 1
    assert first["mean"] != trained["mean"], "one step at lr 0.5 must change the figures (the test can fail)"
