"""Paper-profile configs resolved exactly as ``make train`` resolves them (parse only, nothing built)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from src import run


def resolve(argv: list[str]) -> dict[str, Any]:
    """The config a launcher command would hand to LightningCLI, as a plain dict."""
    from src.cli import SuiteCLI, build_cli

    class _ParseOnly(SuiteCLI):
        def instantiate_classes(self) -> None:
            return None

    args = run.parse_args(argv)
    run.validate(args)
    files, _, overrides = run.compose(args, run.default_seed(args))
    cli_args = [*(a for f in files for a in ("--config", str(f))), *overrides]
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        cli = build_cli(cli_args, run=False, cli_class=_ParseOnly)
    finally:
        sys.argv = saved
    return cli.config.as_dict()


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, str]:
    made = {}
    for name in ("mvtec", "visa", "btad"):
        (tmp_path / name).mkdir()
        made[name] = str(tmp_path / name)
    return made


def test_fb_paper_profile_resizes_with_pil_bicubic(roots: dict[str, str]) -> None:
    config = resolve(["--method", "fb", "--profile", "paper", "--data", "mvtec", "--data-root", roots["mvtec"],
                      "--aux-root", roots["visa"]])
    assert config["data"]["init_args"]["image_interpolation"] == "pil_bicubic"
    assert config["data"]["init_args"]["mask_interpolation"] == "bilinear_threshold"
    assert config["data"]["init_args"]["image_size"] == 518
