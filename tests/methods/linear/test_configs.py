"""The YAML files of METHOD=linear name real constructor arguments with the intended values."""

import inspect
from pathlib import Path

import pytest
import yaml

from src.methods.linear import LinearProbe
from src.run import METHODS, config_files, load_layers
from src.tables.launch import COMPARED

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"
ARGS = set(inspect.signature(LinearProbe.__init__).parameters) - {"self"}


@pytest.mark.parametrize("path", ["methods/linear.yaml", "profiles/quick/linear.yaml"])
def test_configs_use_constructor_arguments(path):
    cfg = yaml.safe_load((EXPERIMENTS / path).read_text())
    assert set(cfg["model"]["init_args"]) <= ARGS


def test_paper_setting_is_april_gans():
    cfg = load_layers(config_files("linear", "paper"))
    model, data = cfg["model"]["init_args"], cfg["data"]["init_args"]
    assert cfg["model"]["class_path"] == "src.methods.linear.LinearProbe"
    assert (model["backbone"], model["pretrained"], model["image_size"]) == ("ViT-L-14-336-quickgelu", "openai", 518)
    assert model["layers"] == [6, 12, 18, 24] and model["logit_scale"] == 100.0
    assert model["lr"] == 1e-3 and model["betas"] == [0.5, 0.999] and model["image_score_from_map"] is True
    assert model.get("lr_schedule", "constant") == "constant"
    assert (data["image_size"], data["batch_size"]) == (518, 8)
    assert cfg["trainer"]["max_epochs"] == 15


def test_quick_setting():
    cfg = load_layers(config_files("linear", "quick"))
    model, data = cfg["model"]["init_args"], cfg["data"]["init_args"]
    assert (model["backbone"], model["image_size"], model["layers"]) == ("small-vit", 224, [2, 4, 6, 8])
    assert data["image_size"] == 224 and data["dataset"] == "builtin-B" and data.get("aux_dataset") is None
    # The quick profile's own schedule (README "Learning", "Seeds"): Adam 3e-3 decayed per step along a cosine
    # to 0 over 40 epochs, builtin-B pixel AUROC 71.1 / 69.1 / 69.3 at seeds 0 / 1 / 2 where constant 3e-3 for
    # 20 epochs gave 67.9 / 65.1 / 66.3; betas stay APRIL-GAN's.
    assert model["lr"] == 3e-3 and model["lr_schedule"] == "cosine" and cfg["trainer"]["max_epochs"] == 40
    assert cfg["trainer"]["accelerator"] == "cpu"
    assert model["betas"] == [0.5, 0.999]


def test_registered_in_launcher_and_zero_shot_comparison():
    assert "linear" in METHODS
    assert "linear" in COMPARED["zero-shot"] and "linear" not in COMPARED["k-shot"]


def test_bench_row_builds_the_probe_as_make_train_does():
    import torch

    from src.bench.report import NAMES, TIME_TARGETS
    from src.bench.rows import METHODS as BENCH_METHODS
    from src.bench.rows import PAPER, QUICK, inference_fn

    assert "linear" in BENCH_METHODS and NAMES["linear"] == "Linear probe" and TIME_TARGETS["linear"] == 1.1
    assert (PAPER["linear"].backbone, PAPER["linear"].layers, PAPER["linear"].train_batch) == (
        "ViT-L-14-336-quickgelu", (6, 12, 18, 24), 8)
    model, fn = inference_fn(QUICK["linear"], backbone_only=False)
    with torch.no_grad():
        out = fn(torch.randn(1, 3, 64, 64))
    assert out.anomaly_map.shape == (1, 8, 8) and len(model.linears) == 3


def test_paper_setting_equals_the_readme_table():
    from ..config_tables import ROOT, flatten, readme_table

    table = readme_table(ROOT / "src/methods/linear/README.md", "Paper setting, value by value")
    flat = {k: v for k, v in flatten(yaml.safe_load((EXPERIMENTS / "methods/linear.yaml").read_text())).items()
            if k != "model.class_path"}
    assert set(flat) == set(table), set(flat) ^ set(table)
    assert all(flat[k] == v and type(flat[k]) is type(v) for k, v in table.items()), \
        {k: (flat[k], v) for k, v in table.items() if flat[k] != v}
