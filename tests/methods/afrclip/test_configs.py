"""The YAML files of METHOD=afr name real constructor arguments and match the reference tables."""

import csv
import inspect
from pathlib import Path

import pytest
import yaml

from src.methods.afrclip import AFRCLIP

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments"
TABLES = ("components", "sp_stages", "sp_prompts", "mpfa_m")
ARGS = set(inspect.signature(AFRCLIP.__init__).parameters) - {"self"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", ["methods/afr.yaml", "profiles/quick/afr.yaml"])
def test_method_and_quick_configs_use_constructor_arguments(path):
    cfg = load(EXPERIMENTS / path)
    assert set(cfg["model"]["init_args"]) <= ARGS


def test_paper_setting():
    cfg = load(EXPERIMENTS / "methods/afr.yaml")
    model, data = cfg["model"]["init_args"], cfg["data"]["init_args"]
    assert cfg["model"]["class_path"] == "src.methods.afrclip.AFRCLIP"
    assert (model["backbone"], model["pretrained"], model["image_size"]) == ("ViT-L-14-336-quickgelu", "openai", 518)
    assert model["layers"] == [6, 12, 18, 24] and model["mpfa_kernel"] == 3 and model["lr"] == 1e-3
    assert (data["image_size"], data["batch_size"], data["mask_interpolation"]) == (518, 4, "bilinear_threshold")
    assert cfg["trainer"]["max_epochs"] == 100


@pytest.mark.parametrize("table", TABLES)
def test_ablation_rows_override_real_arguments_and_match_reference(table):
    grid = load(EXPERIMENTS / "ablations/afr" / f"{table}.yaml")
    assert grid["table"] == table
    names = [row["name"] for row in grid["rows"]]
    assert len(names) == len(set(names))
    for row in grid["rows"]:
        assert set(row["labels"]) == set(grid["label_columns"]), row["name"]
        for key in row["overrides"]:
            prefix, _, arg = key.rpartition(".")
            assert prefix == "model.init_args" and arg in ARGS, key
    lines = [ln for ln in (EXPERIMENTS / "reference/afr" / f"{table}.csv").read_text().splitlines()
             if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    assert {r["row"] for r in rows} <= set(names)
    assert set(grid["metrics"]) <= set(rows[0]) - {"row", "dataset"}
