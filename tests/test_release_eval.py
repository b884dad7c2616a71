"""Evaluating trained weights as they are (the authors' FB-CLIP checkpoint, or no step at all) needs no AUX_ROOT.

Such a run trains nothing, so asking for the auxiliary dataset's folder (VisA for a run on MVTec AD)
would only block the evaluation; the run reads no auxiliary data and records where its weights came from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from src import run
from src.launch.compose import evaluation_only
from tests.methods.fbclip.test_release import release_like_checkpoint


@pytest.mark.parametrize(
    ("method", "overrides", "expected"),
    [
        ("fb", ["--trainer.limit_train_batches=0"], True),
        ("fb", ["--trainer.limit_train_batches=0.0"], True),
        ("afr", ["--trainer.max_epochs", "0"], True),           # the space-separated form
        ("afr", ["--trainer.max_steps=0"], True),
        ("afr", ["--trainer.limit_train_batches=1"], False),
        ("afr", ["--trainer.max_steps=-1"], False),
        ("fb", ["--model.init_args.release_checkpoint=/w/mvtec_epoch_1_model.pth"], True),
        ("fb", ["--model.init_args.release_checkpoint", "/w/m.pth"], True),
        ("fb", ["--model.init_args.release_checkpoint=null"], False),
        ("afr", ["--model.init_args.release_checkpoint=/w/m.pth"], False),  # not a key AFR-CLIP declares
        ("fb", [], False),
    ],
)
def test_evaluation_only(method: str, overrides: list[str], expected: bool) -> None:
    assert evaluation_only(method, overrides) is expected


def test_fb_release_evaluation_on_a_folder_needs_no_aux_root(builtin_cache: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    from datamodules.builtin import ensure_builtin
    from src.methods.fbclip import FBCLIP

    data = tmp_path / "data"
    shutil.copytree(Path(ensure_builtin(None)) / "cell", data / "cell")
    tiny = ["--model.init_args.backbone=tiny-vit", "--model.init_args.image_size=32",
            "--model.init_args.layers=[1,2,4]", "--trainer.enable_progress_bar=false"]
    backbone = FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4]).model.backbone
    weights = tmp_path / "mvtec_epoch_1_model.pth"
    torch.save(release_like_checkpoint(backbone.width, backbone.text_width, backbone.embed_dim), weights)

    argv = ["--method", "fb", "--data", "folder", "--data-root", str(data), "--runs-root", str(tmp_path / "runs")]
    assert run.main([*argv, "--", *tiny]) == 2  # training would read MVTec AD: AUX_ROOT is asked for
    assert "give AUX_ROOT=<folder of mvtec>" in capsys.readouterr().err

    assert run.main([*argv, "--", *tiny, f"--model.init_args.release_checkpoint={weights}"]) == 0
    out = capsys.readouterr().out
    run_dir = Path(out.strip().splitlines()[-1][len("run: "):])
    results = json.loads(((run_dir if run_dir.is_absolute() else Path.cwd() / run_dir) / "metrics.json").read_text())
    meta = results["meta"]
    assert meta["loaded_weights"] == str(weights) and f"LOADED WEIGHTS: {weights}" in out
    assert meta["trained_steps"] is None and "UNTRAINED" not in out
    assert meta["data"]["aux_dataset"] is None and meta["data"]["n_aux_images"] == 0
    assert set(results["categories"]) == {"cell"}
