"""DAS: every type edits only inside its mask (plus the border allowance), masks are non-empty,
draws are reproducible, and the hook speaks the DataModule's contract."""

from __future__ import annotations

import numpy as np
import pytest

from src.methods.vtfusion.das import (
    DAS_TYPES,
    DASHook,
    foreground_mask,
    synthesize,
)
from src.methods.vtfusion.das_regions import changed as changed_pixels
from src.methods.vtfusion.das_regions import dilate

from .helpers import object_image, textured_image

SIZE = 64


@pytest.mark.parametrize("kind", DAS_TYPES)
def test_each_type_edits_only_its_mask_and_is_non_empty(kind: str) -> None:
    image = textured_image(SIZE, seed=1)
    pool = [textured_image(SIZE, seed=2)]
    empty = 0
    for seed in range(100):
        edit = synthesize(image, np.random.default_rng(seed), [kind], pool, combined_prob=0.0)
        assert edit.image.dtype == np.float32 and edit.image.shape == image.shape
        assert edit.image.min() >= 0.0 and edit.image.max() <= 1.0
        assert set(np.unique(edit.mask)) <= {0.0, 1.0}
        empty += not edit.mask.any()
        changed = changed_pixels(image, edit.image)
        # Changes outside the mask only within 3 px of the edited region (feathering,
        # anti-aliasing); for misplaced/blur also the region pixels the 5x5 median unlabelled.
        allowed = edit.mask > 0
        if kind in ("misplaced", "blur"):
            allowed |= dilate(edit.region, 3)
        elif kind == "crack":
            allowed |= dilate(edit.mask > 0, 3)
        assert not (changed & ~allowed).any(), f"{kind} seed {seed} changed pixels outside mask + border"
        if kind == "noise":
            assert np.array_equal(edit.mask > 0, edit.region)
    assert empty <= 1, f"{kind}: {empty} empty masks in 100 draws"


def test_same_seed_same_anomaly_and_seeds_differ() -> None:
    image = textured_image(SIZE)
    a = synthesize(image, np.random.default_rng(7))
    b = synthesize(image, np.random.default_rng(7))
    c = synthesize(image, np.random.default_rng(8))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.mask, c.mask)


def test_combined_mask_is_union_of_several_types() -> None:
    image = textured_image(SIZE)
    edit = synthesize(image, np.random.default_rng(3), DAS_TYPES, combined_prob=1.0)
    assert edit.mask.any()
    assert not (changed_pixels(image, edit.image) & ~dilate(edit.region | (edit.mask > 0), 3)).any()


def test_foreground_mask_finds_the_object_and_falls_back_on_textures() -> None:
    obj = object_image(96)
    fg = foreground_mask(obj)
    assert 0.2 < fg.mean() < 0.5 and fg[48, 48] and not fg[2, 2]
    assert foreground_mask(textured_image(96)).all()
    assert foreground_mask(obj, enabled=False).all()


def test_edits_land_on_the_object() -> None:
    obj = object_image(96)
    fg = foreground_mask(obj)
    on_object = [
        (synthesize(obj, np.random.default_rng(s), ["noise"], combined_prob=0.0).mask > 0) for s in range(20)
    ]
    fractions = [fg[m].mean() for m in on_object if m.any()]
    assert np.mean(fractions) > 0.8


def test_hook_contract() -> None:
    hook = DASHook(types=["blur", "noise"])
    image = textured_image(SIZE)
    out = hook({"image": image, "mask": np.zeros((SIZE, SIZE), np.float32), "label": 0}, np.random.default_rng(0), [])
    assert set(out) == {"image", "mask", "synthetic_image", "synthetic_mask"}
    assert np.array_equal(out["image"], image) and not out["mask"].any()
    assert out["synthetic_image"].shape == (SIZE, SIZE, 3) and out["synthetic_mask"].shape == (SIZE, SIZE)
    assert DASHook.image_keys == ("image", "synthetic_image") and DASHook.mask_keys == ("mask", "synthetic_mask")


@pytest.mark.parametrize("types", [[], ["scratch"], ["blur", "blur"]])
def test_bad_types_are_named(types: list[str]) -> None:
    with pytest.raises(ValueError, match="misplaced"):
        DASHook(types=types)
