"""AFR-CLIP's configs checked by value: the paper setting against the README's table, the quick
profile against what it may change, and every ablation row against the paper table it reproduces.

The paper tables below are transcribed from AFR-CLIP (arXiv 2503.12910 v3), MVTec AD trained on
VisA, image / pixel AUROC in percent. A row is identified by its published numbers in
``experiments/reference/afr/<table>.csv``; the switches the paper ticks for those numbers must be
exactly what the YAML row's overrides produce on top of the paper setting.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
EXPERIMENTS = ROOT / "experiments"
README = ROOT / "src/methods/afrclip/README.md"

#: The values the paper's "Implementation Details" state (plus Eq. 9's class token, Table 3 row 6).
PAPER_STATED = {
    "model.backbone": "ViT-L-14-336-quickgelu", "model.pretrained": "openai", "model.image_size": 518,
    "data.image_size": 518, "model.layers": [6, 12, 18, 24], "model.sp_num_prompts": 5,
    "model.sp_stages": [1], "model.mpfa_kernel": 3, "model.lr": 0.001, "model.lr_decay": "inverse_epoch",
    "data.batch_size": 4, "trainer.max_epochs": 100, "model.use_cmfr": True, "model.use_sp": True,
    "model.sp_use_pv": True, "model.sp_use_pl": True, "model.image_score_from_map": False,
}

# Paper Tables 3-6: switches -> (image AUROC, pixel AUROC).
TABLE3 = {  # (CMFR, SP, MPFA)
    (False, False, False): (89.1, 88.4), (False, True, True): (90.7, 90.1),
    (True, False, False): (92.1, 91.2), (True, True, False): (92.5, 91.6),
    (True, False, True): (92.9, 91.8), (True, True, True): (93.4, 92.3),
}
TABLE4 = {(1,): (93.4, 92.3), (1, 2): (93.5, 92.2), (1, 2, 3): (92.8, 91.9), (1, 2, 3, 4): (93.0, 92.1)}
TABLE5 = {  # (P_v, P_l)
    (False, False): (92.9, 91.8), (True, False): (93.1, 92.1), (False, True): (93.2, 92.0), (True, True): (93.4, 92.3),
}
TABLE6 = {1: (92.5, 91.6), 3: (93.4, 92.3), 5: (93.2, 92.1)}
# Tables 1-2, AFR-CLIP column: dataset -> (image AUROC, image max-F1, pixel AUROC, pixel max-F1).
MAIN = {
    "visa": (87.0, 84.7, 96.0, 38.1), "btad": (95.8, 93.2, 95.0, 52.1), "mpdd": (77.9, 84.5, 97.1, 35.6),
    "mvtec": (93.4, 92.3, 92.3, 47.9), "headct": (94.5, 89.6, None, None), "brainmri": (93.6, 91.8, None, None),
    "br35h": (95.1, 89.9, None, None), "isic": (None, None, 90.6, 75.1), "colondb": (None, None, 83.3, 36.4),
    "clinicdb": (None, None, 87.5, 45.8), "tn3k": (None, None, 78.2, 46.7),
}


def sp_on(cfg: dict) -> bool:
    return bool(cfg["use_sp"] and (cfg["sp_use_pv"] or cfg["sp_use_pl"]))


def mpfa_on(cfg: dict) -> bool:
    assert cfg["mpfa_kernel"] in (1, 3), "Table 3 compares m = 3 (the paper's) with MPFA off (m = 1)"
    return cfg["mpfa_kernel"] == 3


#: table -> (paper table, switches read from an effective config, override keys the table may use).
TABLES = {
    "components": (TABLE3, lambda c: (bool(c["use_cmfr"]), sp_on(c), mpfa_on(c)),
                   {"use_cmfr", "use_sp", "mpfa_kernel"}),
    "sp_stages": (TABLE4, lambda c: tuple(c["sp_stages"]) if sp_on(c) else (), {"sp_stages"}),
    "sp_prompts": (TABLE5, lambda c: (sp_on(c) and bool(c["sp_use_pv"]), sp_on(c) and bool(c["sp_use_pl"])),
                   {"sp_use_pv", "sp_use_pl", "use_sp"}),
    "mpfa_m": (TABLE6, lambda c: c["mpfa_kernel"], {"mpfa_kernel"}),
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def flat_setting(cfg: dict) -> dict:
    """``model.<arg>``, ``data.<arg>`` and ``trainer.<key>`` -> value of a method YAML file."""
    out = {f"model.{k}": v for k, v in cfg["model"]["init_args"].items()}
    out.update({f"data.{k}": v for k, v in cfg.get("data", {}).get("init_args", {}).items()})
    out.update({f"trainer.{k}": v for k, v in cfg.get("trainer", {}).items()})
    return out


def readme_setting() -> dict:
    """The README's paper-setting table: setting -> value (YAML literal), every row with a source."""
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_0-9]+)` \| `([^`]*)` \| (.*) \|$", README.read_text(), re.M)
    assert rows, "README has no paper-setting table"
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)), "a setting is listed twice in the README table"
    assert all(r[2].strip() for r in rows), "every README row names its source"
    return {name: yaml.safe_load(value) for name, value, _ in rows}


def paper_init_args() -> dict:
    return load(EXPERIMENTS / "methods/afr.yaml")["model"]["init_args"]


def test_the_method_file_and_the_readme_table_agree_value_by_value():
    setting = flat_setting(load(EXPERIMENTS / "methods/afr.yaml"))
    table = readme_setting()
    assert set(setting) == set(table), (set(setting) ^ set(table))
    for key, value in setting.items():
        assert value == table[key] and type(value) is type(table[key]), f"{key}: YAML {value!r}, README {table[key]!r}"


def test_values_the_paper_states():
    setting, table = flat_setting(load(EXPERIMENTS / "methods/afr.yaml")), readme_setting()
    for key, value in PAPER_STATED.items():
        assert setting[key] == value and table[key] == value, key
    assert setting["model.image_size"] == setting["data.image_size"]


def test_the_quick_profile_changes_only_backbones_size_and_epochs():
    quick = flat_setting(load(EXPERIMENTS / "profiles/quick/afr.yaml"))
    allowed = {"model.backbone", "model.pretrained", "model.image_size", "model.layers", "model.sp_source",
               "model.sp_cnn_pretrained", "data.image_size", "trainer.max_epochs",
               # the quick profile's own schedule (README "Learning": the paper's under-trains 50 steps)
               "model.lr", "model.lr_decay"}
    assert set(quick) <= allowed, set(quick) - allowed
    assert quick["model.image_size"] == quick["data.image_size"]
    assert len(quick["model.layers"]) == 4  # four stages, as the paper's 6/12/18/24
    assert quick["model.sp_source"] in {"wide_resnet50_2", "resnet18"}  # a CNN, so SP keeps its P_v
    shared = load(EXPERIMENTS / "profiles/paper.yaml")
    assert "model" not in shared, "the paper profile must not change the method's own setting"


def reference_rows(table: str) -> list[dict]:
    lines = [ln for ln in (EXPERIMENTS / "reference/afr" / f"{table}.csv").read_text().splitlines()
             if not ln.startswith("#")]
    return list(csv.DictReader(lines))


@pytest.mark.parametrize("table", sorted(TABLES))
def test_ablation_rows_reproduce_the_paper_table(table):
    paper, switches, allowed = TABLES[table]
    grid = load(EXPERIMENTS / "ablations/afr" / f"{table}.yaml")
    rows = {row["name"]: row for row in grid["rows"]}
    base = paper_init_args()
    covered = set()
    for ref in reference_rows(table):
        row = rows[ref["row"]]
        effective = {**base, **{k.rpartition(".")[2]: v for k, v in row["overrides"].items()}}
        key = switches(effective)
        if not ref["image_auroc"]:  # ours only (no published number): must not be a paper row's setting
            continue
        assert set(k.rpartition(".")[2] for k in row["overrides"]) <= allowed, (table, row["name"])
        assert paper[key] == (float(ref["image_auroc"]), float(ref["pixel_auroc"])), (table, row["name"], key)
        covered.add(key)
    assert covered == set(paper), f"{table}: paper rows without a YAML row: {set(paper) - covered}"


def test_component_labels_match_the_switches():
    grid = load(EXPERIMENTS / "ablations/afr/components.yaml")
    base = paper_init_args()
    for row in grid["rows"]:
        effective = {**base, **{k.rpartition(".")[2]: v for k, v in row["overrides"].items()}}
        ticked = tuple(row["labels"][c].startswith("✓") for c in ("CMFR", "SP", "MPFA"))
        assert ticked == TABLES["components"][1](effective), row["name"]


def test_the_tau1_row_is_the_full_model_with_the_literal_softmax():
    row = {r["name"]: r for r in load(EXPERIMENTS / "ablations/afr/components.yaml")["rows"]}["full-tau1"]
    assert row["overrides"] == {"model.init_args.temperature": 1.0}
    assert paper_init_args()["temperature"] == 0.07


@pytest.mark.parametrize(("table", "column"), [("sp_stages", "Stages"), ("mpfa_m", "m"), ("sp_prompts", None)])
def test_row_labels_name_what_the_overrides_set(table, column):
    grid = load(EXPERIMENTS / "ablations/afr" / f"{table}.yaml")
    base = paper_init_args()
    for row in grid["rows"]:
        effective = {**base, **{k.rpartition(".")[2]: v for k, v in row["overrides"].items()}}
        if table == "sp_stages":
            stages = effective["sp_stages"]
            expected = str(stages[0]) if len(stages) == 1 else f"{stages[0]}–{stages[-1]}"
            assert stages == list(range(1, len(stages) + 1)) and row["labels"][column] == expected, row["name"]
        elif table == "mpfa_m":
            assert row["labels"][column] == str(effective["mpfa_kernel"]), row["name"]
        else:
            ticks = (row["labels"]["P_v"] == "✓", row["labels"]["P_l"] == "✓")
            assert ticks == TABLES["sp_prompts"][1](effective), row["name"]


def test_main_reference_is_the_papers_afr_column():
    got = {}
    for r in reference_rows("main"):
        assert r["row"] == "afr"
        got[r["dataset"]] = tuple(float(r[c]) if r[c] else None
                                  for c in ("image_auroc", "image_f1max", "pixel_auroc", "pixel_f1max"))
    assert got == MAIN
