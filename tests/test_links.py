"""A value given to a linked CLI key (one another key sets) is an error, not silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from src import run
from src.links import LINKS, check_link_targets, given_values


def test_run_refuses_data_image_size_that_the_model_overrides(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code = None
    with pytest.raises(SystemExit) as exit_info:
        code = run.main(["--method", "clip", "--runs-root", str(tmp_path), "--", "--data.init_args.image_size=300"])
    assert code is None and exit_info.value.code == 2
    err = capsys.readouterr().err
    assert ("data.init_args.image_size=300 (from --data.init_args.image_size) cannot take effect: it is linked to "
            "model.init_args.image_size, which sets it to 224; set --model.init_args.image_size=300 instead") in err
    assert not any(tmp_path.iterdir()), "refused before any run directory"


def test_agreeing_values_and_the_source_override_pass(tmp_path: Path) -> None:
    run.check_config([*_files("clip"), "--model.init_args.image_size=96", "--data.init_args.image_size=96"])
    run.check_config([*_files("clip"), "--model.init_args.image_size=96"])


def test_every_link_is_checked_in_config_files_too(tmp_path: Path) -> None:
    layer = tmp_path / "layer.yaml"
    layer.write_text("data:\n  init_args:\n    image_size: 300\n")
    argv = ["--config", str(layer), "--data.init_args.image_size", "310"]
    assert given_values(argv, "data.init_args.image_size") == [
        (0, str(layer), 300), (2, "--data.init_args.image_size", 310)]

    class Config(dict):
        pass

    for source, target in LINKS:
        message = check_link_targets(["--config", str(layer)], Config({source: 224}))
        assert message is not None and message.startswith(f"{target}=300 (from {layer}) cannot take effect")
    assert check_link_targets(["--config", str(layer)], Config({"model.init_args.image_size": 300})) is None


def test_a_later_source_layer_supersedes_an_earlier_target(tmp_path: Path) -> None:
    """afr.yaml sets both sizes to 518; the quick profile then sets the model's to 224: no error."""
    method, profile = tmp_path / "method.yaml", tmp_path / "profile.yaml"
    method.write_text("model:\n  init_args:\n    image_size: 518\ndata:\n  init_args:\n    image_size: 518\n")
    profile.write_text("model:\n  init_args:\n    image_size: 224\n")
    argv = ["--config", str(method), "--config", str(profile)]
    assert check_link_targets(argv, {"model.init_args.image_size": 224}) is None
    message = check_link_targets([*argv, "--data.init_args.image_size=518"], {"model.init_args.image_size": 224})
    assert message is not None
    assert message.startswith("data.init_args.image_size=518 (from --data.init_args.image_size)")


def _files(method: str) -> list[str]:
    return [a for f in run.config_files(method, "quick") for a in ("--config", str(f))]
