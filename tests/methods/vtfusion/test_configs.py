"""VTFusion's configuration files checked by value.

* The paper setting (``experiments/methods/vtfusion.yaml``) equals, key for key, the "Paper
  setting" table of ``src/methods/vtfusion/README.md``; the values the paper itself states are
  also written out here, so changing the YAML and the README together still fails.
* The constructor and DAS-hook defaults equal the paper setting (running without the YAML is the
  same method).
* The quick profile changes only backbone, size and length.
* Every ablation row sets exactly the switches of the paper table it reproduces (Table II: ATE /
  AIE / MPF at k = 2, 4, 8; Table III: one DAS type at a time, k = 2), and the reference CSVs carry
  the paper's numbers under the same row names.
"""

from __future__ import annotations

import csv
import inspect
import re
from pathlib import Path

import pytest
import yaml

from src.methods.vtfusion import VTFusion
from src.methods.vtfusion.das import DASHook
from src.tables.spec import flatten

ROOT = Path(__file__).resolve().parents[3]
EXPERIMENTS = ROOT / "experiments"
README = ROOT / "src/methods/vtfusion/README.md"


def load(relative: str) -> dict:
    return yaml.safe_load((EXPERIMENTS / relative).read_text())


def readme_setting() -> dict:
    """``{dotted key: value}`` from the README's "Paper setting" table (values parsed as YAML)."""
    text = README.read_text()
    section = text.split("## Paper setting", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]*)` \|", section, flags=re.M)
    assert rows, "README has no Paper setting table"
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys)), "a key is listed twice in the README table"
    return {key: yaml.safe_load(value) for key, value in rows}


PAPER = flatten(load("methods/vtfusion.yaml"))

#: What the VTFusion paper states explicitly (implementation details, Eqs. 3-5, Table I/II/III setup).
STATED_BY_PAPER = {
    "model.init_args.backbone": "ViT-B-16-plus-240",
    "model.init_args.r": 1e-5,
    "model.init_args.alpha": 0.1,
    "model.init_args.lr_aie": 1e-3,
    "model.init_args.lr_other": 1e-4,
    "model.init_args.use_ate": True,
    "model.init_args.use_aie": True,
    "model.init_args.use_mpf": True,
    "model.init_args.vision_topk": 1,
    "model.init_args.hinge_topk": 1,
    "model.init_args.distance": "euclidean",
    "model.init_args.learnable_r": False,
    "model.init_args.image_score_after_smoothing": False,
    "data.init_args.protocol": "k-shot",
    "data.init_args.sample_hook_args.types": ["misplaced", "blur", "crack", "noise"],
}


def test_paper_setting_equals_the_readme_table() -> None:
    table = readme_setting()
    assert set(PAPER) == set(table), (sorted(set(PAPER) - set(table)), sorted(set(table) - set(PAPER)))
    wrong = {k: (PAPER[k], table[k]) for k in PAPER if PAPER[k] != table[k] or type(PAPER[k]) is not type(table[k])}
    assert not wrong, f"YAML value vs README value: {wrong}"


def test_paper_setting_has_the_values_the_paper_states() -> None:
    wrong = {k: PAPER[k] for k, v in STATED_BY_PAPER.items() if PAPER[k] != v}
    assert not wrong, wrong
    assert PAPER["model.init_args.pretrained"].startswith("laion400m")  # "LAION-400M based CLIP"
    assert PAPER["data.init_args.k_shot"] in (2, 4, 8)
    # one consistent run length and input size
    assert PAPER["data.init_args.train_steps"] == PAPER["trainer.max_steps"]
    assert PAPER["data.init_args.image_size"] == PAPER["model.init_args.image_size"]


def test_constructor_and_hook_defaults_are_the_paper_setting() -> None:
    defaults = {n: p.default for n, p in inspect.signature(VTFusion.__init__).parameters.items() if n != "self"}
    model = {k.removeprefix("model.init_args."): v for k, v in PAPER.items() if k.startswith("model.init_args.")}
    assert set(model) <= set(defaults)
    fallbacks = {"layers": [3, 6, 9, 12], "seg_bins": [60, 30, 15, 8]}  # a None default means these
    wrong = {k: (v, defaults[k]) for k, v in model.items() if (fallbacks[k] if defaults[k] is None and k in fallbacks
                                                                 else defaults[k]) != v}
    assert not wrong, f"config value vs constructor default: {wrong}"
    tiny = VTFusion(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 3, 4], prompt_set="pair")
    assert list(tiny.model.segmenter.bins) == fallbacks["seg_bins"]
    hook = DASHook()
    args = {k.removeprefix("data.init_args.sample_hook_args."): v for k, v in PAPER.items() if "sample_hook_args" in k}
    assert (list(hook.types), hook.combined_prob, hook.foreground_aware) == (
        args["types"], args["combined_prob"], args["foreground_aware"])


def test_quick_profile_changes_only_backbone_size_and_length() -> None:
    quick = flatten(load("profiles/quick/vtfusion.yaml"))
    assert quick == {
        "model.init_args.backbone": "small-vit",
        "model.init_args.pretrained": "auto",
        "model.init_args.image_size": 160,
        "model.init_args.layers": [2, 4, 6, 8],
        "data.init_args.image_size": 160,
        "data.init_args.train_steps": 20,
        "trainer.max_steps": 20,
    }


# ---------------------------------------------------------------------------------- ablations
#: Paper Table II: (ATE, AIE, MPF) of each module row, each at k = 2, 4, 8; image / pixel AUROC on
#: MVTec AD and image AUROC on VisA at k = 2 / 4 / 8 (the paper's numbers, percent).
TABLE_II = {
    "ate": ((True, False, False), (95.3, 95.1, 95.6), (91.9, 92.0, 92.0), (83.8, 84.0, 83.6)),
    "ate-aie": ((True, True, False), (95.4, 94.8, 95.3), (95.3, 96.2, 96.4), (82.9, 82.9, 83.2)),
    "full": ((True, True, True), (96.8, 97.0, 97.3), (96.3, 97.0, 97.1), (86.2, 88.3, 89.2)),
}
#: Paper Table III (k = 2): label, enabled DAS types, MVTec image / pixel, VisA image / pixel.
TABLE_III = {
    "misplaced": ("Misplaced", ["misplaced"], 96.5, 95.1, 83.8, 92.1),
    "blur": ("Fuzzy", ["blur"], 96.5, 95.3, 85.3, 96.5),
    "crack": ("Crack", ["crack"], 96.3, 95.6, 85.8, 95.1),
    "noise": ("Noise", ["noise"], 96.4, 90.4, 85.2, 96.6),
    "all": ("All", ["misplaced", "blur", "crack", "noise"], 96.8, 96.3, 86.2, 96.6),
}


def resolved_rows(table: str) -> dict[str, tuple[dict, dict]]:
    """``{row: (labels, paper setting with the row's overrides)}``; every override must name a real key."""
    grid = load(f"ablations/vtfusion/{table}.yaml")
    assert grid["table"] == table and grid["metrics"] == ["image_auroc", "pixel_auroc"]
    out = {}
    for row in grid["rows"]:
        unknown = set(row["overrides"]) - set(PAPER)
        assert not unknown, f"{table}/{row['name']} overrides keys absent from the paper setting: {unknown}"
        out[row["name"]] = (row["labels"], {**PAPER, **row["overrides"]})
    return out


def reference(table: str) -> dict[tuple[str, str], dict[str, str]]:
    with (EXPERIMENTS / f"reference/vtfusion/{table}.csv").open() as handle:
        lines = [ln for ln in handle if ln.strip() and not ln.startswith("#")]
    return {(r["row"], r["dataset"]): r for r in csv.DictReader(lines)}


def test_module_rows_set_the_switches_of_table_ii() -> None:
    rows = resolved_rows("modules")
    expected = {f"{m}-k{k}": (m, k, i) for m in TABLE_II for i, k in enumerate((2, 4, 8))}
    assert set(rows) == set(expected)
    csv_rows = reference("modules")
    assert {r for r, _ in csv_rows} == set(expected) and {d for _, d in csv_rows} == {"mvtec", "visa"}
    for name, (module, k, i) in expected.items():
        labels, config = rows[name]
        switches, mvtec_image, mvtec_pixel, visa_image = TABLE_II[module]
        got = tuple(config[f"model.init_args.use_{s}"] for s in ("ate", "aie", "mpf"))
        assert got == switches, f"{name}: use_ate/aie/mpf {got}, paper {switches}"
        assert config["data.init_args.k_shot"] == k, name
        assert config["data.init_args.sample_hook_args.types"] == PAPER["data.init_args.sample_hook_args.types"]
        marks = {s.upper(): "✓" if on else "" for s, on in zip(("ate", "aie", "mpf"), switches)}
        assert labels == {"k": str(k), **marks}, name
        assert float(csv_rows[(name, "mvtec")]["image_auroc"]) == mvtec_image[i], name
        assert float(csv_rows[(name, "mvtec")]["pixel_auroc"]) == mvtec_pixel[i], name
        assert float(csv_rows[(name, "visa")]["image_auroc"]) == visa_image[i], name


def test_das_rows_set_the_types_of_table_iii() -> None:
    rows = resolved_rows("das_types")
    assert set(rows) == set(TABLE_III)
    csv_rows = reference("das_types")
    for name, (label, types, m_img, m_pix, v_img, v_pix) in TABLE_III.items():
        labels, config = rows[name]
        assert labels == {"Types": label}
        assert config["data.init_args.sample_hook_args.types"] == types, name
        assert config["data.init_args.k_shot"] == 2, name
        # nothing else departs from the full model
        assert all(config[k] == PAPER[k] for k in PAPER if not k.endswith(("sample_hook_args.types", "k_shot")))
        got = [float(csv_rows[(name, d)][m]) for d in ("mvtec", "visa") for m in ("image_auroc", "pixel_auroc")]
        assert got == [m_img, m_pix, v_img, v_pix], name


@pytest.mark.parametrize("table", ["modules", "das_types"])
def test_rows_override_only_what_their_table_varies(table: str) -> None:
    varies = {
        "modules": {"data.init_args.k_shot", "model.init_args.use_aie", "model.init_args.use_mpf"},
        "das_types": {"data.init_args.k_shot", "data.init_args.sample_hook_args.types"},
    }[table]
    for name, (_, config) in resolved_rows(table).items():
        changed = {k for k in PAPER if config[k] != PAPER[k]}
        assert changed <= varies, f"{table}/{name} changes {changed - varies}"
