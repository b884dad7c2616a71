"""Offline-first weight resolution, function by function, with open_clip's registry and the network faked.

No test here touches the network or builds a model: open_clip's pretrained configs, the Hugging
Face cache lookup, DNS and the download are replaced by fakes that record how they were called.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path

import huggingface_hub
import pytest
import torch

from src.backbone import weights
from src.backbone.weights import (
    WeightsUnavailableError,
    cached_checkpoint,
    default_tag,
    is_checkpoint_path,
    is_torchscript_archive,
    offline_requested,
    resolve_checkpoint,
    warn_random_init,
)

FLAGS = ("HF_HUB_OFFLINE", "ADSUITE_OFFLINE", "TRANSFORMERS_OFFLINE")


@pytest.mark.parametrize("flag", FLAGS)
def test_offline_flags(monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    for name in FLAGS:
        monkeypatch.delenv(name, raising=False)
    assert not offline_requested()
    for value, offline in ((" True ", True), ("YES", True), ("1", True), ("0", False), ("no", False), ("", False)):
        monkeypatch.setenv(flag, value)
        assert offline_requested() is offline, (flag, value)


@pytest.fixture
def cfgs(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Fake open_clip pretrained configs, keyed by (model, tag); unknown pairs give {} as open_clip does."""
    table: dict[tuple[str, str], dict] = {}
    monkeypatch.setattr(weights.oc_pretrained, "get_pretrained_cfg", lambda model, tag: table.get((model, tag), {}))
    return table


@pytest.fixture
def hub_cache(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Fake Hugging Face cache: {(repo, filename): answer}; calls are recorded under "calls"."""
    answers: dict = {"calls": []}

    def lookup(repo_id: str, filename: str, cache_dir: str | None = None) -> object:
        answers["calls"].append((repo_id, filename, cache_dir))
        return answers.get((repo_id, filename))

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lookup)
    return answers


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_cached_checkpoint_file_entry(tmp_path: Path, cfgs: dict) -> None:
    present = _file(tmp_path / "w.pt")
    cfgs[("m", "local")] = {"file": str(present)}
    cfgs[("m", "gone")] = {"file": str(tmp_path / "missing.pt")}
    assert cached_checkpoint("m", "local") == str(present)
    assert cached_checkpoint("m", "gone") is None
    assert cached_checkpoint("m", "unknown") is None


def test_cached_checkpoint_hub_then_url(tmp_path: Path, cfgs: dict, hub_cache: dict, monkeypatch) -> None:
    hit = _file(tmp_path / "hub" / "model.bin")
    hub_cache[("org/repo", "open_clip_pytorch_model.bin")] = str(hit)
    hub_cache[("org/other", "w.safetensors")] = object()  # huggingface_hub's "known missing" sentinel
    cfgs[("m", "hub")] = {"hf_hub": "org/repo/"}  # no file name: open_clip's default one
    cfgs[("m", "both")] = {"hf_hub": "org/other/w.safetensors", "url": "https://host/path/ViT.pt"}
    cfgs[("m", "url")] = {"url": "https://host/path/ViT.pt"}
    cache = tmp_path / "cache"
    assert cached_checkpoint("m", "hub", str(cache)) == str(hit)
    assert hub_cache["calls"] == [("org/repo", "open_clip_pytorch_model.bin", str(cache))]
    assert cached_checkpoint("m", "both", str(cache)) is None  # neither the hub nor the url file is there
    _file(cache / "ViT.pt")
    assert cached_checkpoint("m", "both", str(cache)) == str(cache / "ViT.pt")
    assert hub_cache["calls"][-1] == ("org/other", "w.safetensors", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # without cache_dir: OpenAI's ~/.cache/clip
    assert cached_checkpoint("m", "url") is None
    _file(tmp_path / "home" / ".cache" / "clip" / "ViT.pt")
    assert cached_checkpoint("m", "url") == str(tmp_path / "home" / ".cache" / "clip" / "ViT.pt")


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Fake DNS and download: ``state["download"]`` is called as open_clip's download_pretrained."""
    state: dict = {"lookups": [], "downloads": [], "dns_fails": False}

    def getaddrinfo(host: str, port: int) -> list:
        state["lookups"].append((host, port))
        if state["dns_fails"]:
            raise OSError("no network")
        return []

    def download(cfg: dict, cache_dir: str | None = None) -> object:
        thread = threading.current_thread()
        state["downloads"].append((cfg, cache_dir, thread.daemon, logging.getLogger("huggingface_hub").level))
        return state["download"]()

    monkeypatch.setattr(weights.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(weights.oc_pretrained, "download_pretrained", download)
    return state


def test_download_returns_the_file_and_restores_the_hub_logger(tmp_path: Path, cfgs: dict, network: dict) -> None:
    got = _file(tmp_path / "dl.pt")
    cfgs[("m", "t")] = {"url": "https://weights.example.org/a/b.pt"}
    network["download"] = lambda: got
    hub = logging.getLogger("huggingface_hub")
    hub.setLevel(logging.INFO)
    try:
        assert weights._download_with_timeout("m", "t", str(tmp_path)) == str(got)
        assert hub.level == logging.INFO
    finally:
        hub.setLevel(logging.NOTSET)
    assert network["lookups"] == [("weights.example.org", 443)]
    # in a daemon thread (a hanging download dies with the process), the hub's retries silenced
    assert network["downloads"] == [(cfgs[("m", "t")], str(tmp_path), True, logging.ERROR)]


def test_download_failures_name_the_fix(tmp_path: Path, cfgs: dict, network: dict, monkeypatch) -> None:
    cfgs[("m", "t")] = {"url": "https://weights.example.org/b.pt", "hf_hub": "org/repo/"}
    message = r"Pretrained weights 't' for m are not in the local cache.*--model.init_args.pretrained=/path/to/m.pt"
    network["dns_fails"] = True
    with pytest.raises(WeightsUnavailableError, match=message):
        weights._download_with_timeout("m", "t", None)
    assert network["lookups"] == [("huggingface.co", 443)] and network["downloads"] == []  # hub wins over url
    network["dns_fails"] = False
    for outcome in (lambda: str(tmp_path / "never-written.pt"), lambda: None, lambda: 1 / 0):
        network["download"] = outcome
        with pytest.raises(WeightsUnavailableError, match=message):
            weights._download_with_timeout("m", "t", None)
    monkeypatch.setattr(weights, "DOWNLOAD_TIMEOUT_S", 0.2)
    network["download"] = lambda: time.sleep(3) or _file(tmp_path / "late.pt")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match=message):
        weights._download_with_timeout("m", "t", None)
    assert time.monotonic() - start < 2.5  # gave up after the timeout, not after the download


def test_resolve_none_auto_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_checkpoint("m", " None ") is None and resolve_checkpoint("m", "NONE") is None
    calls = []

    def resolve_tag(model: str, tag: str, cache_dir: str | None) -> str:
        calls.append((model, tag, cache_dir))
        if tag == "laion":
            raise WeightsUnavailableError("offline")
        return "/cached/w.pt"

    monkeypatch.setattr(weights, "cached_checkpoint", resolve_tag)
    monkeypatch.setattr(weights.open_clip, "list_pretrained_tags_by_model",
                        lambda model: {"ViT-B-16": ["openai", "laion"], "bare": []}[model])
    assert resolve_checkpoint("ViT-B-16", " AUTO ", "/c") == "/cached/w.pt"
    assert calls == [("ViT-B-16", "openai", "/c")]
    monkeypatch.setattr(weights, "DEFAULT_TAGS", {"ViT-B-16": "laion"})
    with pytest.warns(UserWarning, match=r"ViT-B-16 runs on random weights \(weights 'laion' are not available"):
        assert resolve_checkpoint("ViT-B-16", "auto", "/c") is None
    with pytest.warns(UserWarning, match=r"bare runs on random weights \(open_clip has no pretrained tag for bare\)"):
        assert resolve_checkpoint("bare", "auto") is None
    present = _file(tmp_path / "mine.bin")
    assert resolve_checkpoint("bare", f" {present} ") == str(present)
    missing = r"^Checkpoint file not found: .*gone\.pt \(pretrained=' .*gone\.pt'\)"
    with pytest.raises(WeightsUnavailableError, match=missing):
        resolve_checkpoint("bare", f" {tmp_path / 'gone.pt'}")
    with pytest.raises(ValueError, match=r"^Unknown pretrained tag 'x' for bare\. Valid: \(none\), a checkpoint path"):
        resolve_checkpoint("bare", "x")
    with pytest.raises(ValueError, match=r"Valid: \['laion', 'openai'\]"):
        resolve_checkpoint("ViT-B-16", "x")


def test_resolve_tag_cached_offline_or_downloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights.open_clip, "list_pretrained_tags_by_model", lambda model: ["openai", "laion"])
    cache = {("m", "openai", "/c"): "/cached/openai.pt"}
    monkeypatch.setattr(weights, "cached_checkpoint", lambda model, tag, cache_dir: cache.get((model, tag, cache_dir)))
    monkeypatch.setattr(weights, "_download_with_timeout", lambda model, tag, where: f"/dl/{model}/{tag}/{where}")
    for name in FLAGS:
        monkeypatch.delenv(name, raising=False)
    assert resolve_checkpoint("m", "openai", "/c") == "/cached/openai.pt"
    assert resolve_checkpoint("m", "laion", "/c") == "/dl/m/laion//c"
    monkeypatch.setenv("ADSUITE_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"^Pretrained weights 'laion' for m are not in the local cache"):
        resolve_checkpoint("m", "laion", "/c")


def test_checkpoint_path_or_tag() -> None:
    for text in ("dir/w", " w.pt ", "w.pth", "w.bin", "w.safetensors"):
        assert is_checkpoint_path(text), text
    for text in ("openai", "none", "auto", "laion2b_s34b_b88k", "w.PT"):
        assert not is_checkpoint_path(text), text


def test_torchscript_archive_told_from_a_state_dict(tmp_path: Path) -> None:
    scripted, saved, text = tmp_path / "jit.pt", tmp_path / "state.pt", tmp_path / "plain.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, OpenAI's archives are not
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    torch.save(torch.nn.Linear(2, 2).state_dict(), saved)  # also a zip file, but no compiled code
    text.write_text("not a zip")
    assert is_torchscript_archive(str(scripted))
    assert not is_torchscript_archive(str(saved)) and not is_torchscript_archive(str(text))


def test_default_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights.open_clip, "list_pretrained_tags_by_model",
                        lambda model: {"ViT-B-16-plus-240": ["other"], "x": ["second", "first"], "y": []}[model])
    assert default_tag("ViT-B-16-plus-240") == "laion400m_e31"  # the papers' choice, not open_clip's first
    assert default_tag("x") == "second" and default_tag("y") is None


def test_random_init_warning_text() -> None:
    # (Where the warning points, stacklevel=3, is not asserted: mutation runs add a trampoline frame
    # to every call, so the location differs under mutmut.)
    with pytest.warns(UserWarning) as caught:
        warn_random_init("m", "why")
    bar = "!" * 78
    assert [str(w.message) for w in caught] == [
        f"\n{bar}\nRANDOM-INIT BACKBONE: m runs on random weights (why).\nEvery metric of this run is tagged "
        f"'random-init' and means nothing about the method.\n{bar}"]
