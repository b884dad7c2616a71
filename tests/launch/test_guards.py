"""Launcher guards, each fed the attack it stops (issue: reliability items 8-16)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from src.launch.checkpoints import check_checkpoint, check_state_keys, read_checkpoint
from src.launch.errors import LaunchError, one_line, report_error
from src.launch.guards import check_class_paths, check_ranges, check_resume, check_seeds
from src.launch.lock import RunLock


def test_duplicate_seeds_are_refused() -> None:
    with pytest.raises(LaunchError, match=r"seed\(s\) \[0\] more than once"):
        check_seeds([0, 1, 0])
    check_seeds([0, 1, 2])


@pytest.mark.parametrize(("config", "needle"), [
    ({"model": {"init_args": {"lr": -1.0}}}, "--model.init_args.lr=-1.0 is out of range: it must be > 0"),
    ({"model": {"init_args": {"prompt_lr": 0.0}}}, "prompt_lr=0.0"),
    ({"model": {"init_args": {"weight_decay": -0.1}}}, "weight_decay=-0.1"),
    ({"model": {"init_args": {"lr": float("nan")}}}, "not a finite number"),
    ({"trainer": {"max_epochs": 0}}, "--trainer.max_epochs=0 is out of range"),
    ({"trainer": {"limit_train_batches": 1.5}}, "float in [0, 1]"),
    ({"trainer": {"limit_test_batches": -2}}, "limit_test_batches=-2"),
    ({"data": {"init_args": {"batch_size": 0}}}, "--data.init_args.batch_size=0"),
])
def test_numeric_ranges(config: dict, needle: str | None) -> None:
    if needle is None:
        check_ranges(config)
        return
    with pytest.raises(LaunchError) as err:
        check_ranges(config)
    assert needle in str(err.value)


def test_valid_numbers_pass() -> None:
    check_ranges({"model": {"init_args": {"lr": 1e-3, "weight_decay": 0.0, "eval_sigma": 4.0}},
                  "trainer": {"max_epochs": -1, "limit_train_batches": 1, "limit_test_batches": 0.5},
                  "data": {"init_args": {"batch_size": 1, "num_workers": 0, "k_shot": 0}}})


@pytest.mark.parametrize("override", [
    "--model.class_path=subprocess.Popen", "--data.class_path=os.system", "--model=subprocess.Popen",
    "--trainer.callbacks.class_path=builtins.exec",
])
def test_class_paths_outside_the_suite_are_refused(override: str) -> None:
    with pytest.raises(LaunchError, match="outside the suite"):
        check_class_paths({"model": {"class_path": "src.methods.afrclip.AFRCLIP"}}, [override])


def test_class_paths_in_config_layers_are_checked() -> None:
    layers = {"trainer": {"callbacks": [{"class_path": "src.metrics.callback.MetricsCallback"},
                                        {"class_path": "shutil.rmtree"}]}}
    with pytest.raises(LaunchError, match=r"trainer.callbacks\[1\].class_path='shutil.rmtree'"):
        check_class_paths(layers, [])
    check_class_paths({"model": {"class_path": "src.methods.afrclip.AFRCLIP"}}, ["--model=AFRCLIP"])


def _run(tmp_path: Path, finished: bool = False) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    if finished:
        (run / "metrics.json").write_text("{}")
    return run


STORED = {"method": "afr", "profile": "quick", "data": "builtin", "overrides": ["--trainer.max_epochs=2"]}
DEFAULTS = {"method": None, "profile": "quick", "data": None, "overrides": []}


def test_resume_of_a_finished_run_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, finished=True)
    with pytest.raises(LaunchError, match="this run finished; its results are in"):
        check_resume(run, dict(DEFAULTS), DEFAULTS, STORED)


@pytest.mark.parametrize(("given", "needle"), [
    ({"method": "fb"}, "METHOD=fb (the run has afr)"),
    ({"overrides": ["--trainer.max_epochs=5"]}, "ARGS=--trainer.max_epochs=5 (the run has --trainer.max_epochs=2)"),
    ({"profile": "paper"}, "PROFILE=paper"),
])
def test_resume_with_conflicting_options_is_refused(tmp_path: Path, given: dict, needle: str) -> None:
    with pytest.raises(LaunchError) as err:
        check_resume(_run(tmp_path), {**DEFAULTS, **given}, DEFAULTS, STORED)
    assert needle in str(err.value)


def test_resume_repeating_the_run_options_is_fine(tmp_path: Path) -> None:
    check_resume(_run(tmp_path), {**DEFAULTS, "method": "afr", "overrides": ["--trainer.max_epochs=2"]},
                 DEFAULTS, STORED)


def test_second_lock_on_a_run_directory_is_refused(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(LaunchError, match=rf"in use by another process \(pid {os.getpid()}\)"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released on exit
        pass


def test_garbage_and_truncated_checkpoints_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(LaunchError, match=rf"{garbage} is not a readable checkpoint"):
        read_checkpoint(garbage)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(64, 64)}, "frozen_backbone": {"method": "afr"}}, good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(LaunchError, match="truncated, damaged or not a torch checkpoint"):
        read_checkpoint(truncated)
    assert check_checkpoint(good, "afr")["state_dict"]["w"].sum() == 64 * 64


def test_checkpoint_of_another_method_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "frozen_backbone": {"method": "afr"}}, path)
    with pytest.raises(LaunchError, match=r"checkpoint of method 'afr', not of 'fb'"):
        check_checkpoint(path, "fb")
    with pytest.raises(LaunchError, match=r"lacks 1 trainable parameter\(s\) of FBCLIP"):
        check_state_keys("FBCLIP", {"model.prompt"}, {"state_dict": {"w": torch.ones(2)}})


class _Payload:
    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (Path.touch, (Path(os.environ["ADSUITE_TEST_PAYLOAD"]),))


def test_checkpoints_load_with_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "payload-ran"
    monkeypatch.setenv("ADSUITE_TEST_PAYLOAD", str(marker))
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "extra": _Payload()}, path)
    with pytest.raises(LaunchError, match="not a readable checkpoint"):
        read_checkpoint(path)
    assert not marker.exists(), "a checkpoint ran pickled code"


def test_error_report_is_one_line_and_keeps_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    try:
        json.loads("{broken")
    except ValueError as err:
        log = report_error(err, None, tmp_path)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("error: JSONDecodeError: Expecting property name") and len(lines) == 2
    assert lines[1] == f"(full traceback in {log})" and "Traceback (most recent call last)" in log.read_text()
    assert one_line(LaunchError("a\n  b")) == "a b"


def test_every_checkpoint_load_in_the_suite_is_weights_only() -> None:
    """``torch.load`` and ``ckpt_path=`` calls under src/ pass ``weights_only=True`` explicitly."""
    import ast

    root = Path(__file__).resolve().parents[2] / "src"
    offenders, seen = [], 0
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if name == "torch.load" or (name.endswith((".fit", ".test", ".validate")) and "ckpt_path" in keywords):
                seen += 1
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert seen >= 4 and offenders == []
