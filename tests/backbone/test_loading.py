"""Model building helpers: size pairs, the two checkpoint formats, open_clip's notice, rehearsal twins."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from src.backbone.loading import load_weights, pair, without_open_clip_weight_notice
from src.backbone.rehearsal import REHEARSAL_ENV, TWINS, rehearsal_active, rehearsal_twin


def test_pair() -> None:
    assert pair(7) == (7, 7) and pair((3, 5)) == (3, 5)
    got = pair([2.0, 4.0])
    assert got == (2, 4) and all(type(v) is int for v in got)


class _Tiny(nn.Module):
    def __init__(self, extra: bool = False) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 3)
        if extra:  # what OpenAI's archive carries besides the weights (and a scripted model's causal mask)
            for name in ("input_resolution", "context_length", "vocab_size", "attn_mask"):
                self.register_buffer(name, torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def _archive(module: nn.Module, path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; OpenAI's archives are not
        torch.jit.script(module).save(str(path))
    return str(path)


def test_torchscript_archive_loads_without_its_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _Tiny(extra=True)
    target = _Tiny()
    load_weights(target, _archive(source, tmp_path / "jit.pt"))
    assert torch.equal(target.lin.weight, source.lin.weight) and torch.equal(target.lin.bias, source.lin.bias)


def test_incomplete_archive_and_unreadable_file_are_errors(tmp_path: Path) -> None:
    smaller = nn.Module()
    smaller.lin = nn.Linear(2, 3, bias=False)
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*lin\.bias"):  # strict: no silent half-load
        load_weights(_Tiny(), _archive(smaller, tmp_path / "partial.pt"))
    junk = tmp_path / "junk.pt"
    torch.save([1, 2], junk)  # a torch file, neither a state dict nor an archive
    with pytest.raises(RuntimeError, match=rf"^Could not load CLIP weights from {junk}: .+"):
        load_weights(_Tiny(), str(junk))


def test_open_clip_notice_dropped_only_inside(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with without_open_clip_weight_notice():
        logging.info("No pretrained weights loaded for model 'x'")
        logging.info("something else")
    logging.info("No pretrained weights loaded after")
    assert [r.getMessage() for r in caplog.records] == ["something else", "No pretrained weights loaded after"]


def test_rehearsal_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REHEARSAL_ENV, raising=False)
    assert not rehearsal_active() and rehearsal_twin("ViT-L-14-336") is None
    for value, active in (("", False), (" 0 ", False), ("1", True), ("yes", True)):
        monkeypatch.setenv(REHEARSAL_ENV, value)
        assert rehearsal_active() is active, value


def test_rehearsal_twins(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(REHEARSAL_ENV, "1")
    assert rehearsal_twin("ViT-L-14-336") == "rehearse-L-14-336"
    assert capsys.readouterr().err == (
        "REHEARSAL: backbone ViT-L-14-336 replaced by its width-64 twin rehearse-L-14-336 (random-init)\n")
    assert rehearsal_twin("rehearse-B-16-plus-240") == "rehearse-B-16-plus-240"  # already a twin: as it is
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match=rf"^ADSUITE_REHEARSAL is set but backbone 'ViT-B-16' has no width-shrunk "
                                         rf"twin; known: \{sorted(TWINS)!s:.10}"):
        rehearsal_twin("ViT-B-16")
