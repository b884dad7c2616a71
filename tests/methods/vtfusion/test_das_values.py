"""DAS pinned by value: the parameter ranges each type draws from, the misplaced patch count, the
combined type's frequency and chaining, and seeded golden outputs.

The ranges are the method's recipe (``src/methods/vtfusion/README.md``, DAS paragraph) written out
here; they are read off a recording wrapper around the sample's generator, so a changed bound is
seen even when the edited image would still look plausible.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from src.methods.vtfusion import das

from .helpers import textured_image

SIZE = 64
TAU = round(2 * np.pi, 6)

#: uniform(low, high) ranges per type: (required every time or on some draw, allowed helpers).
RANGES = {
    # area fraction of S², CutPaste aspect ratios, rotation in degrees
    "misplaced": {(0.02, 0.15), (0.3, 1.0), (1.0, 3.3), (-45.0, 45.0)},
    # region area, blur sigma; region shape helpers: ellipse ratio and angle, Perlin gradients
    "blur": {(0.01, 0.15), (2.0, 6.0), (0.3, 1.0), (0.0, 180.0), (0.0, TAU)},
    # length fraction of S, width px, darkening factor, branch length (fraction of the rest);
    # heading and branch angle helpers
    "crack": {(0.1, 0.5), (1.0, 4.0), (0.3, 0.7), (0.3, 0.6), (0.0, TAU), (20.0, 70.0)},
    # region area, amplitude / sigma, salt-and-pepper density; region shape helpers
    "noise": {(0.005, 0.1), (0.1, 0.4), (0.05, 0.2), (0.3, 1.0), (0.0, 180.0), (0.0, TAU)},
}
REQUIRED = {
    "misplaced": {(0.02, 0.15), (0.3, 1.0), (1.0, 3.3), (-45.0, 45.0)},
    "blur": {(0.01, 0.15), (2.0, 6.0)},
    "crack": {(0.1, 0.5), (1.0, 4.0), (0.3, 0.7), (0.3, 0.6)},
    "noise": {(0.005, 0.1), (0.1, 0.4), (0.05, 0.2)},
}


class Recorder:
    """Wraps a ``numpy.random.Generator`` and records every call as (method, args)."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        method = getattr(self._rng, name)

        def call(*args, **kwargs):
            self.calls.append((name, args))
            return method(*args, **kwargs)

        return call


def _uniform_ranges(calls: list[tuple[str, tuple]]) -> tuple[set, list]:
    """Fixed (low, high) ranges, and the symmetric noise amplitudes drawn as uniform(-a, a, size)."""
    fixed, symmetric = set(), []
    for name, args in calls:
        if name != "uniform":
            continue
        low, high = (round(float(v), 6) for v in args[:2])
        if len(args) == 3 and low == -high:
            symmetric.append(high)
        else:
            fixed.add((low, high))
    return fixed, symmetric


@pytest.mark.parametrize("kind", das.DAS_TYPES)
def test_each_type_draws_its_parameters_from_the_recipe_ranges(kind: str) -> None:
    image, pool = textured_image(SIZE, seed=1), [textured_image(SIZE, seed=2)]
    fg = das.foreground_mask(image)
    seen, amplitudes, normals = set(), [], []
    for seed in range(40):
        rng = Recorder(seed)
        das.SYNTHESISERS[kind](image, rng, fg, pool)
        fixed, symmetric = _uniform_ranges(rng.calls)
        seen |= fixed
        amplitudes += symmetric
        normals += [args for name, args in rng.calls if name == "normal"]
    assert seen <= RANGES[kind], f"{kind}: unexpected ranges {sorted(seen - RANGES[kind])}"
    assert REQUIRED[kind] <= seen, f"{kind}: ranges never drawn {sorted(REQUIRED[kind] - seen)}"
    if kind == "crack":  # heading changes N(0, 15°) per step
        assert normals and all(args[:2] == (0.0, 15.0) for args in normals)
    if kind == "noise":  # uniform noise U(-a, a) and Gaussian noise N(0, σ²) with a, σ in [0.1, 0.4]
        sigmas = [float(args[1]) for args in normals]
        assert amplitudes and sigmas
        assert all(0.1 <= a <= 0.4 for a in amplitudes + sigmas)
        assert all(args[0] == 0.0 for args in normals)


def test_misplaced_adds_each_further_patch_with_probability_half() -> None:
    image = textured_image(SIZE, seed=1)
    fg = das.foreground_mask(image)
    counts = Counter()
    n = 400
    for seed in range(n):
        rng = Recorder(seed)
        das.misplaced(image, rng, fg, [])
        counts[sum(1 for name, args in rng.calls if name == "uniform" and args[:2] == (0.02, 0.15))] += 1
    assert set(counts) <= {1, 2, 3}
    # 1, 2, 3 patches with probability 1/2, 1/4, 1/4 (binomial sd at n = 400 is at most 0.025)
    for patches, p in ((1, 0.5), (2, 0.25), (3, 0.25)):
        assert counts[patches] / n == pytest.approx(p, abs=0.07), counts


def _stub_synthesisers(monkeypatch, log: list[list[str]]) -> None:
    """Each stub type i adds 0.5 to pixel (0, i) of whatever image it gets, and labels that pixel."""

    def make(i: int, name: str):
        def edit(image, rng, fg, pool=()):
            log[-1].append(name)
            out = image.copy()
            out[0, i] += 0.5
            mask = np.zeros(image.shape[:2], np.float32)
            mask[0, i] = 1.0
            return das.Edit(out, mask, mask > 0)

        return edit

    monkeypatch.setattr(das, "SYNTHESISERS", {name: make(i, name) for i, name in enumerate(das.DAS_TYPES)})


def test_combined_type_frequency_and_counts(monkeypatch) -> None:
    log: list[list[str]] = []
    _stub_synthesisers(monkeypatch, log)
    image = np.zeros((8, 8, 3), np.float32)
    n = 2000
    for seed in range(n):
        log.append([])
        das.synthesize(image, np.random.default_rng(seed), das.DAS_TYPES, combined_prob=0.25, foreground_aware=False)
    sizes = Counter(len(chosen) for chosen in log)
    assert all(len(set(chosen)) == len(chosen) for chosen in log)  # distinct types
    assert set(sizes) == {1, 2, 3}
    assert (sizes[2] + sizes[3]) / n == pytest.approx(0.25, abs=0.04)  # combined with p = 0.25
    assert sizes[2] / (sizes[2] + sizes[3]) == pytest.approx(0.5, abs=0.08)  # 2 or 3 types, uniformly
    singles = Counter(chosen[0] for chosen in log if len(chosen) == 1)
    assert all(singles[t] / sizes[1] == pytest.approx(0.25, abs=0.04) for t in das.DAS_TYPES)
    log.clear()
    for seed in range(50):  # one enabled type: never combined
        log.append([])
        das.synthesize(image, np.random.default_rng(seed), ["crack"], combined_prob=1.0, foreground_aware=False)
    assert all(chosen == ["crack"] for chosen in log)


def test_combined_type_applies_every_chosen_anomaly_in_sequence(monkeypatch) -> None:
    log: list[list[str]] = []
    _stub_synthesisers(monkeypatch, log)
    image = np.full((8, 8, 3), 0.25, np.float32)
    for seed in range(20):
        log.append([])
        edit = das.synthesize(image, np.random.default_rng(seed), das.DAS_TYPES, combined_prob=1.0,
                              foreground_aware=False)
        chosen = [das.DAS_TYPES.index(t) for t in log[-1]]
        assert len(chosen) in (2, 3)
        expected_image, expected_mask = image.copy(), np.zeros((8, 8), np.float32)
        for i in chosen:  # every edit applied on top of the previous one, masks united
            expected_image[0, i] += 0.5
            expected_mask[0, i] = 1.0
        np.testing.assert_array_equal(edit.image, expected_image)
        np.testing.assert_array_equal(edit.mask, expected_mask)


#: Golden values of ``synthesize(textured_image(64, seed=1), default_rng(seed), [type],
#: pool=[textured_image(64, seed=2)], combined_prob=0)`` (and all types with combined_prob=1 for
#: "combined"): (labelled pixels, region pixels, sum of
#: absolute changes), made by running that call at the commit that added this test (numpy's PCG64
#: stream and OpenCV's drawing are stable across their releases). A change means the recipe changed.
GOLDEN = {
    ("misplaced", 0): (87, 99, 22.39),
    ("misplaced", 1): (158, 170, 34.1929),
    ("misplaced", 15): (252, 266, 51.7557),  # a rotated patch whose corners are filled by reflection
    ("misplaced", 2): (451, 485, 101.8864),  # a patch of the same image, placed clear of its source
    ("blur", 0): (315, 335, 50.503),
    ("blur", 1): (273, 334, 47.3656),
    ("crack", 0): (70, 128, 68.4906),
    ("crack", 1): (57, 95, 45.1579),
    ("crack", 17): (115, 186, 81.5489),  # seeds 17 and 29 grow a branch (seeds 0 and 1 do not)
    ("crack", 29): (115, 178, 51.2321),
    ("noise", 0): (218, 218, 120.6323),
    ("noise", 1): (219, 219, 64.7352),
    ("noise", 5): (333, 333, 258.1785),  # the Gaussian family
    ("combined", 3): (469, 481, 102.8014),  # all four types enabled, combined_prob = 1
}


def test_seeded_draws_are_pinned() -> None:
    image, pool = textured_image(SIZE, seed=1), [textured_image(SIZE, seed=2)]
    for (kind, seed), (mask, region, change) in GOLDEN.items():
        edit = das.synthesize(image, np.random.default_rng(seed), [kind] if kind != "combined" else das.DAS_TYPES,
                              pool, combined_prob=1.0 if kind == "combined" else 0.0)
        got = (int(edit.mask.sum()), int(edit.region.sum()), float(np.abs(edit.image.astype(np.float64) - image).sum()))
        assert got[:2] == (mask, region) and got[2] == pytest.approx(change, abs=1e-3), (kind, seed, got)
        assert edit.image.dtype == edit.mask.dtype == np.float32, (kind, seed)


def test_foreground_background_is_the_median_of_a_five_percent_border() -> None:
    # 60 px: the border is 3 px wide. Its outermost ring is light (0.9), the two inside it and the
    # rest of the background dark (0.2), so the border's median is the dark colour and the object
    # (a 20 px square of 0.7) is the foreground; a 1 px border would take the light ring as the
    # background and call nearly everything foreground.
    # Coloured, so that the median is taken per channel: (0.2, 0.4, 0.6) as a whole, not one number.
    image = np.empty((60, 60, 3), np.float32)
    image[:] = (0.2, 0.4, 0.6)
    image[[0, -1]] = 0.9
    image[:, [0, -1]] = 0.9
    image[20:40, 20:40] = (0.7, 0.1, 0.3)
    fg = das.foreground_mask(image)
    assert fg[23:37, 23:37].all() and fg[20:40, 20:40].sum() >= 400 - 4 * 6
    # Between the light ring and the object (the ring stays foreground, and grows at the corners,
    # since the 7 x 7 median filter replicates the edges):
    between = np.zeros((60, 60), bool)
    between[4:-4, 4:-4] = True
    between[20:40, 20:40] = False
    assert not fg[between].any()


def test_combined_probability_must_be_a_probability() -> None:
    assert das.DASHook(combined_prob=1.0).combined_prob == 1.0 and das.DASHook(combined_prob=0.0).combined_prob == 0.0
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=rf"^DASHook combined_prob must be in \[0, 1\], got {bad}$"):
            das.DASHook(combined_prob=bad)


def test_a_region_is_accepted_half_on_the_object_or_at_the_last_try() -> None:
    from src.methods.vtfusion.das_regions import accept

    fg = np.zeros((10, 10), bool)
    fg[:, :5] = True
    half, off = np.zeros((10, 10), bool), np.zeros((10, 10), bool)
    half[0, 3:7] = True
    off[0, 6:9] = True
    assert accept(half, fg, 0) and not accept(off, fg, 0)
    assert [accept(off, fg, attempt) for attempt in (7, 8, 9)] == [False, False, True], "anywhere at try 10 of 10"
    assert accept(off, fg, 3, retries=4) and not accept(off, fg, 2, retries=4)
    assert not accept(np.zeros((10, 10), bool), fg, 9), "an empty region never"


def test_perlin_regions_are_drawn_on_the_object_of_an_object_image() -> None:
    from src.methods.vtfusion.das_regions import random_region

    from .helpers import object_image

    class PerlinOnly:
        """The sample's generator, except that the 50/50 shape draw always picks the Perlin blob."""

        def __init__(self, rng: np.random.Generator) -> None:
            self.rng = rng

        def random(self) -> float:
            return 0.9

        def __getattr__(self, name: str):  # noqa: ANN204 - every other draw is the generator's
            return getattr(self.rng, name)

    fg = das.foreground_mask(object_image(96))
    for seed in range(6):
        region = random_region((96, 96), (0.01, 0.05), fg, PerlinOnly(np.random.default_rng(seed)))
        assert region.any() and fg[region].all(), seed


def test_an_invisible_edit_is_redrawn_three_times_by_default(monkeypatch) -> None:
    calls = []

    def invisible(image, rng, fg, pool):  # noqa: ANN001, ANN202 - a synthesiser that never shows
        calls.append(1)
        return das.Edit(image, np.zeros(image.shape[:2], np.float32), np.zeros(image.shape[:2], bool))

    monkeypatch.setitem(das.SYNTHESISERS, "blur", invisible)
    das.synthesize(textured_image(16), np.random.default_rng(0), ["blur"])
    assert len(calls) == 3
    das.synthesize(textured_image(16), np.random.default_rng(0), ["blur"], max_tries=5)
    assert len(calls) == 8
