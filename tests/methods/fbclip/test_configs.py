"""FB-CLIP's paper setting and ablation rows, checked by value.

The paper setting against the one table in the method README; every ablation row's effective
configuration against what the row's labels in the paper table mean.
"""

from __future__ import annotations

import inspect

import pytest

from src.methods.fbclip import FBCLIP
from src.methods.fbclip.torch_model import RELEASED_LAYERS

from ..config_tables import ROOT, flatten, load, readme_table, reference_rows

TABLE = readme_table(ROOT / "src/methods/fbclip/README.md", "Paper setting, value by value")
PAPER = load("methods/fb.yaml")
ARGS = inspect.signature(FBCLIP.__init__).parameters
#: Constructor defaults that differ from the paper setting on purpose.
DEFAULT_EXCEPTIONS = {"activation_checkpointing": False}
MODEL = "model.init_args."


def same(a, b) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def test_paper_setting_equals_the_readme_table():
    assert PAPER["model"]["class_path"] == "src.methods.fbclip.FBCLIP"
    flat = {k: v for k, v in flatten(PAPER).items() if k != "model.class_path"}
    assert set(flat) == set(TABLE), (set(flat) ^ set(TABLE))
    for key, want in TABLE.items():
        assert same(flat[key], want), f"{key}: fb.yaml has {flat[key]!r}, the README table {want!r}"


def test_constructor_defaults_are_the_paper_setting():
    effective = {"layers": list(RELEASED_LAYERS), "text_strategies": ["eot", "gp", "attn"],
                 "views": ["id", "sem", "spa"], "indicator_weights": [0.3, 0.3, 0.3, 0.1],
                 "soft_mask_values": [0.5, 1.0]}
    for key, want in TABLE.items():
        if not key.startswith(MODEL):
            continue
        arg = key[len(MODEL):]
        default = ARGS[arg].default
        if default is None and arg in effective:
            default = effective[arg]
        assert same(default, DEFAULT_EXCEPTIONS.get(arg, want)), f"default of {arg}: {default!r} vs {want!r}"


@pytest.fixture(scope="module")
def tiny_module():
    return FBCLIP(backbone="tiny-vit", pretrained="none", image_size=32, layers=[1, 2, 4])


def test_constructor_wires_every_value_into_the_model(tiny_module):
    """The defaults reach the network (a value dropped between the wrapper and the model fails)."""
    t = {k[len(MODEL):]: v for k, v in TABLE.items() if k.startswith(MODEL)}
    m = tiny_module.model
    assert list(m.text_fusion.strategies) == t["text_strategies"] and list(m.views) == t["views"]
    assert m.use_fb_attention is t["fb_attention"] and m.background_subtraction is t["background_subtraction"]
    assert (m.bg_bank, m.bg_candidates) == (t["bg_bank"], t["bg_candidates"])
    assert list(m.indicator_weights) == t["indicator_weights"]
    assert list(m.soft_mask_values) == t["soft_mask_values"] and m.mask_threshold == t["mask_threshold"]
    assert m.sem_alpha == t["sem_alpha"] and m.temperature == t["temperature"]
    assert m.layer_weights.numel() == t["layer_weight_count"]
    assert m.fb_attention.fg.heads == t["fb_heads"]
    assert m.fb_attention.fg.to_q.out_features == t["fb_heads"] * t["fb_head_dim"]
    assert m.scr_args == {"tau": t["scr_tau"], "margin": t["scr_margin"], "weight": t["scr_weight"],
                          "w_entropy": t["scr_w_entropy"], "w_margin": t["scr_w_margin"]}
    assert m.prompt.n_ctx == t["n_ctx"] and m.prompt.wording == t["prompt_wording"]
    assert len(m.prompt.deep_prompts) == t["deep_prompt_depth"]
    assert m.backbone.text_causal_mask is t["text_causal_mask"]
    hp = tiny_module.hparams
    assert (hp.focal_gamma, hp.dice_weight, hp.lr, hp.beta1, hp.beta2) == (
        t["focal_gamma"], t["dice_weight"], t["lr"], t["beta1"], t["beta2"])
    assert tiny_module.postprocess.sigma == t["eval_sigma"]
    assert tiny_module.image_score_from_map is t["image_score_from_map"]


# --------------------------------------------------------------------- ablation rows
TICK = "✓"


def effective(row: dict) -> dict:
    """The paper setting's model arguments with the row's overrides applied."""
    args = dict(PAPER["model"]["init_args"])
    for key, value in row["overrides"].items():
        assert key.startswith(MODEL) and key[len(MODEL):] in ARGS, key
        args[key[len(MODEL):]] = value
    return args


def ticked(labels: dict, columns: dict[str, str]) -> list[str]:
    return [value for column, value in columns.items() if labels[column] == TICK]


def expected_text_strategies(row: dict) -> dict:
    # Supplement Table 1: the ticked strategies, on the raw ID tokens (no extra views, FB-Attn, BS)
    chosen = ticked(row["labels"], {"EOT": "eot", "GP": "gp", "Attn": "attn"})
    return {"text_strategies": chosen, "views": ["id"], "fb_attention": False, "background_subtraction": False}


def expected_mvfbe_views(row: dict) -> dict:
    # Supplement Table 2: the ticked views, FB-Attention as ticked, full MSTFF, no BS
    views = ticked(row["labels"], {"ID": "id", "SEM": "sem", "SPA": "spa"})
    return {"views": views, "fb_attention": row["labels"]["FB-Attn"] == TICK, "background_subtraction": False}


def expected_bg_tokens(row: dict) -> dict:
    # Supplement Table 3: bank L (every row) or L/2 (first half by index; ours: lowest score)
    bank = row["labels"]["Bank"]
    return {"bg_bank": "full" if bank == "L" else "half",
            "bg_candidates": "score" if "lowest score" in bank else "index"}


INCREMENTAL = {
    "Base (vanilla CLIP)": {"text_strategies": ["eot"], "views": ["id"], "fb_attention": False,
                            "background_subtraction": False},
    "+ MSTFF": {"views": ["id"], "fb_attention": False, "background_subtraction": False},
    "+ MVFBE": {"background_subtraction": False},
    "+ BS (alone)": {"views": ["id"], "fb_attention": False},
    "Full": {},
    "Full, paper reading (ours)": {"text_causal_mask": True, "deep_prompt_depth": 9, "prompt_wording": "paper",
                                   "bg_candidates": "score"},
}


def expected_incremental(row: dict) -> dict:
    return INCREMENTAL[row["labels"]["Configuration"]]


EXPECTED = {"text_strategies": expected_text_strategies, "mvfbe_views": expected_mvfbe_views,
            "bg_tokens": expected_bg_tokens, "incremental": expected_incremental}


@pytest.mark.parametrize("table", sorted(EXPECTED))
def test_ablation_rows_change_exactly_what_the_paper_row_says(table):
    grid = load(f"ablations/fb/{table}.yaml")
    assert grid["table"] == table
    for row in grid["rows"]:
        want = dict(PAPER["model"]["init_args"])
        want.update(EXPECTED[table](row))
        got = effective(row)
        diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if not same(got.get(k), want.get(k))}
        assert not diff, f"{table}/{row['name']}: (row, paper table) differ in {diff}"
    published = reference_rows(f"reference/fb/{table}.csv")
    assert published == {row["name"] for row in grid["rows"]}


def test_every_paper_table_row_is_present():
    """The grids hold every combination the paper tables report (none dropped)."""
    text = load("ablations/fb/text_strategies.yaml")["rows"]
    assert sorted(tuple(expected_text_strategies(r)["text_strategies"]) for r in text) == sorted(
        [("eot",), ("gp",), ("attn",), ("eot", "attn"), ("eot", "gp", "attn")])
    views = load("ablations/fb/mvfbe_views.yaml")["rows"]
    combos = {(tuple(e["views"]), e["fb_attention"]) for e in map(expected_mvfbe_views, views)}
    assert len(combos) == len(views) == 14  # 7 non-empty view subsets, with and without FB-Attention
