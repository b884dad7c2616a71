"""The runbook is the doc's command table; the rehearsal's twins and commands are what they claim."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import open_clip
import pytest

from src.backbone import CLIPBackbone
from src.backbone.rehearsal import REHEARSAL_ENV, TWINS
from src.rehearse.__main__ import report, select
from src.rehearse.plan import DOC, RunbookError, doc_with_table, load_runbook, render_table, to_standins
from src.rehearse.runner import Outcome, make_command

OPEN_CLIP_CONFIGS = Path(open_clip.__file__).parent / "model_configs"
TWIN_CONFIGS = Path(__file__).resolve().parents[2] / "src" / "backbone" / "configs"


def test_doc_table_is_the_runbook():
    entries = load_runbook()
    text = DOC.read_text()
    assert doc_with_table(text, entries) == text, "run python -m src.rehearse --write-doc"
    for entry in entries:
        assert f"`{entry.command}`" in text
    assert "`make train RESUME=runs/<name>` (rehearsed on `make train METHOD=fb" in text


def test_runbook_covers_every_paper_command():
    entries = load_runbook()
    trains = {(e.variables["METHOD"], e.variables["DATA"], e.variables.get("K")) for e in entries
              if e.target == "train" and not e.resume}
    for method in ("afr", "fb"):  # both directions and one folder target, each with its paper pairing
        assert {(method, "mvtec", None), (method, "visa", None), (method, "folder", None)} <= trains
    assert {("vtfusion", d, str(k)) for d in ("mvtec", "visa") for k in (1, 2, 4, 8)} <= trains
    tables = {(e.variables["METHOD"], e.variables["TABLE"]) for e in entries if e.target == "ablate"}
    ablations = TWIN_CONFIGS.parents[2] / "experiments" / "ablations"
    on_disk = {(p.parent.name, p.stem) for p in ablations.glob("*/*.yaml")}
    assert tables == on_disk
    protocols = {e.variables.get("PROTOCOL", "zero-shot") for e in entries if e.target == "compare"}
    assert protocols == {"zero-shot", "k-shot"}
    assert [e.variables["PROFILE"] for e in entries] == ["paper"] * len(entries)
    assert sum(e.resume for e in entries) == 1


def test_render_and_markers():
    entries = load_runbook()
    table = render_table(entries)
    assert table.splitlines()[2].startswith(f"| {entries[0].paper} | `make ")
    assert len(table.splitlines()) == 2 + len(entries)
    with pytest.raises(RunbookError, match="marker"):
        doc_with_table("no markers here", entries)
    from src.rehearse.plan import Entry

    piped = Entry("p", "a table", "make ablate TABLE=a|b", "ablate", {"TABLE": "a|b"})
    assert render_table([piped]).splitlines()[2] == "| a table | `make ablate TABLE=a\\|b` |"  # a cell, not a column


def test_make_command_points_data_at_standins_and_appends_limits(tmp_path):
    entry = next(e for e in load_runbook() if e.name == "afr-folder-btad")
    argv = make_command(entry, tmp_path, {"ROWS": "x"}, steps=2)
    assert argv[:3] == ["make", "--no-print-directory", "train"]
    assert f"DATA_ROOT={tmp_path / 'btad'}" in argv and f"AUX_ROOT={tmp_path / 'visa'}" in argv
    assert "ROWS=x" in argv
    args = shlex.split(argv[-1].split("=", 1)[1])
    assert args == ["--data.init_args.mask_suffix=", "--trainer.limit_train_batches=1", "--trainer.max_steps=2",
                    "--trainer.limit_test_batches=1"]
    assert to_standins("/data/mvtec,/data/visa", Path("/s")) == "/s/mvtec,/s/visa"


def test_select_and_report():
    entries = load_runbook()
    assert [e.name for e in select(entries, "fb-*-to-*")] == ["fb-visa-to-mvtec", "fb-mvtec-to-visa"]
    with pytest.raises(RunbookError, match="match no entry"):
        select(entries, "nope")
    text = report([Outcome("a", "ok", 1.25, "n", Path("l"), 0.5), Outcome("bb", "FAILED", 2.0, "why", Path("l"), 4.0)],
                  63.0)
    assert "bb       FAILED       2.0       4.0  why" in text
    assert text.splitlines()[-1] == "1 ok, 1 failed; total wall time 63.0 s (1.1 min), CPU time of the commands 4.5 s"


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_config_differs_only_in_width(name):
    real = json.loads((OPEN_CLIP_CONFIGS / f"{name}.json").read_text())
    twin = json.loads((TWIN_CONFIGS / f"{TWINS[name]}.json").read_text())
    assert twin["embed_dim"] == real["embed_dim"] and twin.get("quick_gelu") == real.get("quick_gelu")
    shrunk = {"vision_cfg": {"width": 64, "head_width": 16}, "text_cfg": {"width": 64, "heads": 4}}
    for tower, changed in shrunk.items():
        assert {k: v for k, v in twin[tower].items() if k not in changed} == \
               {k: v for k, v in real[tower].items() if k not in changed}
        assert {k: twin[tower][k] for k in changed} == changed


def test_twin_is_built_and_recorded_under_the_rehearsal(monkeypatch):
    monkeypatch.setenv(REHEARSAL_ENV, "1")
    backbone = CLIPBackbone("ViT-L-14-336-quickgelu", "openai", image_size=518)
    info = backbone.describe()
    assert (info["backbone"], info["shrunk_from"], info["random_init"]) == (
        "rehearse-L-14-336-quickgelu", "ViT-L-14-336-quickgelu", True)
    assert (backbone.num_layers, backbone.patch_size, backbone.grid_size, backbone.width) == (24, 14, (37, 37), 64)
    assert info["activation"] == "QuickGELU" and backbone.native_size == 336
    plain = CLIPBackbone("ViT-L-14-336", "openai", image_size=518)  # openai weights imply QuickGELU
    assert plain.describe()["activation"] == "QuickGELU"
    with pytest.raises(ValueError, match="no width-shrunk twin"):
        CLIPBackbone("tiny-vit", "none")
    monkeypatch.setenv(REHEARSAL_ENV, "0")
    assert CLIPBackbone("tiny-vit", "none").describe()["shrunk_from"] is None


def test_check_only_resolves_paper_configs_and_rejects_a_bad_key(tmp_path):
    from src.rehearse.plan import Entry
    from src.rehearse.runner import check_entry, launcher_argv

    for name in ("mvtec", "visa"):
        (tmp_path / name).mkdir()
    base = {"METHOD": "fb", "PROFILE": "paper", "DATA": "visa", "DATA_ROOT": "/data/visa", "AUX_ROOT": "/data/mvtec"}
    good = Entry("good", "", "make train", "train", base)
    assert launcher_argv(good, tmp_path) == ["--method", "fb", "--profile", "paper", "--data", "visa", "--data-root",
                                             str(tmp_path / "visa"), "--aux-root", str(tmp_path / "mvtec"), "--"]
    assert check_entry(good, tmp_path).status == "ok"
    bad = Entry("bad", "", "make train", "train", {**base, "ARGS": "--model.init_args.no_such_option=1"})
    outcome = check_entry(bad, tmp_path)
    assert (outcome.status, outcome.note) == ("FAILED", "config rejected (exit 2)")
