"""Session-wide test environment: no network, offline W&B, a private built-in benchmark cache."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ADSUITE_OFFLINE", "1")


@pytest.fixture(scope="session")
def builtin_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One generated built-in benchmark shared by the tests that run the whole pipeline."""
    path = tmp_path_factory.mktemp("adsuite-cache")
    os.environ["ADSUITE_CACHE"] = str(path)
    return str(path)
