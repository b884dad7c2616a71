"""Built-in benchmark: determinism, defect kinds, masks, atomic generation, reader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from datamodules import builtin
from datamodules.base import DatasetError, validate_samples
from datamodules.builtin import (
    BUILTIN_A,
    BUILTIN_B,
    BUILTIN_CATEGORIES,
    DEFECT_TYPES,
    BuiltinReader,
    builtin_root,
    ensure_builtin,
    generate_builtin,
)

SMALL = {"n_train": 2, "n_test_good": 1, "n_per_defect": 1, "progress": False}


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def small_builtin(tmp_path_factory) -> Path:
    return generate_builtin(tmp_path_factory.mktemp("bt") / "builtin-v1", **SMALL)


def test_halves_mix_textures_and_objects():
    assert set(BUILTIN_A).isdisjoint(BUILTIN_B) and set(BUILTIN_A) | set(BUILTIN_B) == set(BUILTIN_CATEGORIES)
    for half in (BUILTIN_A, BUILTIN_B):
        textures = [c for c in half if c in builtin.TEXTURES]
        assert 0 < len(textures) < len(half)


def test_generation_is_byte_identical(small_builtin, tmp_path):
    again = generate_builtin(tmp_path / "again", **SMALL)
    first, second = _hashes(small_builtin), _hashes(again)
    assert len(first) == 10 * (2 + 1 + 4 * 2) + 1  # images, masks, stamp
    assert first == second


def test_output_is_pinned_to_the_revision(small_builtin):
    """If this fails the generator's bytes changed: bump ``builtin.REVISION`` (stale caches are then
    regenerated) and update the digest."""
    digest = hashlib.sha256()
    for path in sorted(small_builtin.rglob("*.png")):
        digest.update(str(path.relative_to(small_builtin)).encode())
        digest.update(path.read_bytes())
    assert (builtin.REVISION, digest.hexdigest()) == (
        2,
        "5cebbdd29052644acfa13fb69d767360a9df85596250f470e7ae2c9f1009b268",
    )


def test_stale_cache_is_regenerated(tmp_path, monkeypatch):
    root = generate_builtin(tmp_path / "builtin-v1", categories=["coins"], **SMALL)
    stamp = root / "builtin.json"
    stamp.write_text(stamp.read_text().replace(f'"revision": {builtin.REVISION}', '"revision": 1'))
    (root / "coins" / "train" / "good" / "000.png").write_bytes(b"old bytes")
    real = builtin.generate_builtin
    monkeypatch.setattr(builtin, "generate_builtin", lambda path, progress: real(path, ["coins"], **SMALL))
    assert ensure_builtin(root) == root
    assert f'"revision": {builtin.REVISION}' in stamp.read_text()
    assert (root / "coins" / "train" / "good" / "000.png").read_bytes() != b"old bytes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["builtin-v1"]  # the stale copy is gone
    assert ensure_builtin(root) == root  # up to date: kept as is


def test_defects_have_exact_nonempty_masks(small_builtin):
    """Each mask is non-empty, and the defect changed the masked pixels and nothing far from them."""
    assert len(DEFECT_TYPES) >= 4
    for c, category in enumerate(BUILTIN_CATEGORIES):
        photo = builtin._load_photo(category)
        for d, defect in enumerate(DEFECT_TYPES):
            image = cv2.imread(str(small_builtin / category / "test" / defect / "000.png"))[..., ::-1]
            mask_file = small_builtin / category / "ground_truth" / defect / "000_mask.png"
            mask = cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)
            assert mask.shape == (256, 256) and set(np.unique(mask)) == {0, 255}, mask_file
            mask = mask > 0
            assert 0 < mask.mean() < 0.2, mask_file
            # the clean image the defect was painted on, from the same seeded stream
            clean = builtin._normal_image(photo, category, np.random.default_rng([builtin.SEED, c, 2 + d, 0]))
            changed = (clean != image).any(axis=2)
            near = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            assert changed[mask].mean() > 0.5, mask_file
            assert not changed[~near].any(), mask_file


def test_killed_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_write = builtin._write

    def failing_write(path, image):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        real_write(path, image)

    monkeypatch.setattr(builtin, "_write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        generate_builtin(tmp_path / "builtin-v1", categories=["coins"], **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("ADSUITE_CACHE", str(tmp_path / "env"))
    assert builtin_root() == tmp_path / "env" / "builtin-v1"
    assert builtin_root(tmp_path / "arg") == tmp_path / "arg" / "builtin-v1"
    monkeypatch.delenv("ADSUITE_CACHE")
    assert builtin_root() == Path.home() / ".cache" / "clip-ad-suite" / "builtin-v1"


def test_incomplete_folder_is_refused(tmp_path):
    (tmp_path / "builtin-v1" / "coins").mkdir(parents=True)
    with pytest.raises(DatasetError, match="not a complete built-in benchmark"):
        ensure_builtin(tmp_path / "builtin-v1")


def test_reader_halves_and_counts(small_builtin):
    reader = BuiltinReader("builtin-A")
    test = reader.read(small_builtin, "test")
    assert sorted({s.category for s in test}) == sorted(BUILTIN_A)
    assert len(test) == 5 * (1 + 4) and {s.defect_type for s in test} == {"good", *DEFECT_TYPES}
    validate_samples(test, "builtin-A")
    assert len(BuiltinReader("builtin").read(small_builtin, "train")) == 20
    with pytest.raises(DatasetError, match="unknown category.*grass"):
        reader.read(small_builtin, "test", ["grass"])
    with pytest.raises(DatasetError, match="unknown variant"):
        BuiltinReader("builtin-C")
