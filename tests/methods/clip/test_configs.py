"""The CLIP baseline's paper setting and its layer grid, checked by value."""

from __future__ import annotations

import inspect

from src.methods.clip import CLIPBaseline, stage_layers

from ..config_tables import ROOT, flatten, load, readme_table, reference_rows

TABLE = readme_table(ROOT / "src/methods/clip/README.md", "Paper setting, value by value")
PAPER = load("methods/clip.yaml")
ARGS = inspect.signature(CLIPBaseline.__init__).parameters


def test_paper_setting_equals_the_readme_table():
    assert PAPER["model"]["class_path"] == "src.methods.clip.CLIPBaseline"
    flat = {k: v for k, v in flatten(PAPER).items() if k != "model.class_path"}
    assert set(flat) == set(TABLE), (set(flat) ^ set(TABLE))
    for key, want in TABLE.items():
        assert flat[key] == want and isinstance(flat[key], bool) == isinstance(want, bool), key
    assert all(key[len("model.init_args."):] in ARGS for key in TABLE if key.startswith("model."))


def test_stage_blocks_of_the_paper_backbone():
    # ViT-B-16-plus-240 has 12 blocks: 4 stages are blocks 3, 6, 9, 12
    assert stage_layers(12, TABLE["model.init_args.num_stages"]) == [3, 6, 9, 12]


def test_layer_rows_tap_the_blocks_their_labels_name():
    grid = load("ablations/clip/layers.yaml")
    column = "blocks (8 / 12-block backbone)"
    for row in grid["rows"]:
        over = {k.rpartition(".")[2]: v for k, v in row["overrides"].items()}
        assert all(k.startswith("model.init_args.") for k in row["overrides"]), row["name"]
        small, large = ([int(b) for b in part.split(",")] for part in row["labels"][column].split(" / "))
        stages = row["labels"]["stages"]
        if stages == "explicit":
            assert set(over) == {"layers"} and over["layers"] == small == large, row["name"]
        else:
            assert over == {"num_stages": int(stages)}, row["name"]
            assert stage_layers(8, int(stages)) == small and stage_layers(12, int(stages)) == large, row["name"]
    assert {row["name"] for row in grid["rows"]} == {"last", "stages2", "stages4", "early"}
    assert reference_rows("reference/clip/main.csv") == {"clip"}  # no published layer grid
