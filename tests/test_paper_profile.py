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


def _paper(method: str, data: str, roots: dict[str, str], *extra: str) -> list[str]:
    root = roots["btad"] if data == "folder" else roots[data]
    return ["--method", method, "--profile", "paper", "--data", data, "--data-root", root, *extra]


@pytest.mark.parametrize(
    ("data", "launch", "overrides", "aux", "epochs"),
    [
        ("mvtec", [], [], "visa", 3),                          # VisA -> MVTec AD: visa_epoch_2
        ("visa", [], [], "mvtec", 2),                          # MVTec AD -> VisA: mvtec_epoch_1
        ("folder", [], [], "mvtec", 2),                        # BTAD, MPDD, ...: the MVTec-trained model
        ("folder", ["--aux", "visa"], [], "visa", 3),          # the other pairing picks its own preset
        ("folder", [], ["--data.init_args.aux_dataset=visa"], "visa", 3),
        ("folder", [], ["--trainer.max_epochs=7"], "mvtec", 7),  # the user's override still wins
    ],
)
def test_fb_direction_and_epoch_preset(roots: dict[str, str], data: str, launch: list[str], overrides: list[str],
                                       aux: str, epochs: int) -> None:
    aux_root = roots["visa" if aux == "visa" else "mvtec"]
    config = resolve([*_paper("fb", data, roots, "--aux-root", aux_root, *launch), "--", *overrides])
    assert config["data"]["init_args"]["aux_dataset"] == aux
    assert config["data"]["init_args"]["aux_root"] == aux_root
    assert config["trainer"]["max_epochs"] == epochs


def test_fb_quick_profile_keeps_its_length(roots: dict[str, str]) -> None:
    # The quick profile's own schedule is 1 epoch at Adam 1e-3 (fbclip README, Learning; it was 2 at 5e-5);
    # it wins over the direction presets (trained on VisA = 3 epochs), which this test is about.
    quick = resolve(["--method", "fb"])
    assert quick["model"]["init_args"]["lr"] == 1e-3
    assert quick["trainer"]["max_epochs"] == 1 and quick["data"]["init_args"]["aux_dataset"] is None
    on_mvtec = resolve(["--method", "fb", "--data", "mvtec", "--data-root", roots["mvtec"],
                        "--aux-root", roots["visa"]])
    assert on_mvtec["trainer"]["max_epochs"] == 1 and on_mvtec["data"]["init_args"]["aux_dataset"] == "visa"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "fb", "--profile", "paper", "--data", "folder"],
         "METHOD=fb trains on the auxiliary dataset mvtec for DATA=folder"),
        (["--method", "fb", "--profile", "paper", "--data", "visa"],
         "give AUX_ROOT=<folder of mvtec>"),
        (["--method", "fb", "--profile", "paper", "--data", "mvtec", "--aux", "folder"],
         "training on folder has no preset: give ARGS=\"--trainer.max_epochs=N\""),
        (["--method", "fb", "--profile", "paper"],  # the paper profile defaults to DATA=mvtec
         "DATA=mvtec needs DATA_ROOT"),
    ],
)
def test_fb_direction_errors_name_the_fix(roots: dict[str, str], argv: list[str], message: str,
                                          capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    argv = [*argv, "--runs-root", str(tmp_path / "runs")]
    if "--data" in argv and "DATA_ROOT" not in message:
        data = argv[argv.index("--data") + 1]
        argv += ["--data-root", roots["btad"] if data == "folder" else roots[data]]
    if "--aux" in argv:
        argv += ["--aux-root", roots["btad"]]
    assert run.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("method", "data", "aux"),
    [
        ("afr", "mvtec", "visa"), ("afr", "visa", "mvtec"), ("afr", "folder", "visa"),  # AFR-CLIP: VisA-trained
        ("fb", "folder", "mvtec"),                                                     # FB-CLIP: MVTec-trained
        ("clip", "mvtec", "none"), ("clip", "visa", "none"), ("clip", "folder", "none"),  # training-free
    ],
)
def test_each_method_declares_its_paper_pairing(roots: dict[str, str], method: str, data: str, aux: str) -> None:
    extra = [] if aux == "none" else ["--aux-root", roots[aux]]
    config = resolve([*_paper(method, data, roots, *extra)])
    assert config["data"]["init_args"]["aux_dataset"] == aux


def test_other_pairing_is_an_option(roots: dict[str, str]) -> None:
    config = resolve([*_paper("afr", "folder", roots, "--aux", "mvtec", "--aux-root", roots["mvtec"])])
    assert config["data"]["init_args"]["aux_dataset"] == "mvtec"
    assert config["trainer"]["max_epochs"] == 100


def test_vtfusion_k_shot_has_no_auxiliary_data(roots: dict[str, str]) -> None:
    config = resolve([*_paper("vtfusion", "mvtec", roots, "--k", "2")])
    assert config["data"]["init_args"]["protocol"] == "k-shot" and config["data"]["init_args"]["aux_dataset"] is None


def test_pairing_file_must_list_every_target(tmp_path: Path) -> None:
    from src.pairing import PairingError, declared_pairing

    (tmp_path / "methods" / "m").mkdir(parents=True)
    (tmp_path / "methods" / "m" / "pairing.yaml").write_text("aux: {mvtec: visa, visa: mvtec}\n")
    with pytest.raises(PairingError, match="pairing.yaml: needs `aux:` with exactly the targets"):
        declared_pairing("m", tmp_path)
