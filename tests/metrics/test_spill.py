"""SpillStore on its own: file layout, records, chunked reads with skips, masks, clean-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from src.metrics.spill import SpillRecord, SpillStore


def _store(root: Path) -> tuple[SpillStore, list[np.ndarray], list[np.ndarray]]:
    """Category "a": four 2x3 maps (position 0, 1, 3, 4); category "b": one 3x3 map (position 2)."""
    maps = [np.arange(6, dtype=np.float64).reshape(2, 3) + 10 * i for i in range(4)]  # float64 on purpose
    masks = [np.zeros((2, 3), bool) for _ in range(4)]
    masks[0][0, 0] = True
    masks[2][1, :] = True
    store = SpillStore(str(root))
    assert store.directory is None  # nothing created before the first write
    for pos, m, k in zip((0, 1, 3, 4), maps, masks):
        store.append("a", pos, "good" if pos < 3 else "crack", m, k)
    mask_b = np.eye(3, dtype=bool)  # 9 bits: two bytes, the last one partly used
    store.append("b", 2, "hole", -np.ones((3, 3)), mask_b)
    return store, maps, [*masks, mask_b]


def test_records_and_files(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "spill"  # created with its parents
    store, maps, masks = _store(root)
    assert store.directory.parent == root and store.directory.name.startswith("anomaly-metrics-")
    assert sorted(p.name for p in store.directory.iterdir()) == [
        "category0000.maps", "category0000.masks", "category0001.maps", "category0001.masks"]
    assert store.categories() == ["a", "b"] and store.records("missing") == []
    # 6 float32 pixels = 24 bytes per map; a 6-pixel mask packs into one byte, empty masks are not stored
    assert store.records("a") == [
        SpillRecord(0, "good", 2, 3, map_offset=0, mask_offset=0, vmin=0.0, vmax=5.0),
        SpillRecord(1, "good", 2, 3, map_offset=24, mask_offset=-1, vmin=10.0, vmax=15.0),
        SpillRecord(3, "crack", 2, 3, map_offset=48, mask_offset=1, vmin=20.0, vmax=25.0),
        SpillRecord(4, "crack", 2, 3, map_offset=72, mask_offset=-1, vmin=30.0, vmax=35.0),
    ]
    assert store.records("b") == [SpillRecord(2, "hole", 3, 3, 0, 0, -1.0, -1.0)]
    store.flush()
    assert (store.directory / "category0000.maps").read_bytes() == np.concatenate(maps).astype(np.float32).tobytes()
    assert (store.directory / "category0000.masks").read_bytes() == bytes([0b10000000, 0b00011100])
    assert (store.directory / "category0001.masks").read_bytes() == bytes([0b10001000, 0b10000000])
    for cat, record, mask in [*(("a", r, m) for r, m in zip(store.records("a"), masks)), ("b", store.records("b")[0],
                                                                                           masks[4])]:
        got = store.read_mask(cat, record)
        assert got.dtype == bool and got.shape == mask.shape
        np.testing.assert_array_equal(got, mask)
    store.close()


def _runs(store: SpillStore, skip: set[int], chunk_pixels: int) -> list[tuple[list[int], list[float]]]:
    return [([r.position for r in records], values.tolist()) for records, values in
            store.chunks("a", skip, chunk_pixels)]


def test_chunks_split_at_skips_and_at_the_pixel_budget(tmp_path: Path) -> None:
    store, maps, _ = _store(tmp_path)
    flat = [m.ravel().tolist() for m in maps]
    assert _runs(store, set(), 100) == [([0, 1, 3, 4], sum(flat, []))]
    # a run closes as soon as it holds at least chunk_pixels: 12 = exactly two maps
    assert _runs(store, set(), 12) == [([0, 1], flat[0] + flat[1]), ([3, 4], flat[2] + flat[3])]
    assert _runs(store, set(), 7) == [([0, 1], flat[0] + flat[1]), ([3, 4], flat[2] + flat[3])]
    assert _runs(store, {1}, 100) == [([0], flat[0]), ([3, 4], flat[2] + flat[3])]
    assert _runs(store, {0, 4}, 100) == [([1, 3], flat[1] + flat[2])]
    assert _runs(store, {0, 1, 3, 4}, 100) == []
    assert list(store.chunks("missing", set(), 10)) == []
    for _, values in store.chunks("a", set(), 6):
        assert values.dtype == np.float32
    store.close()


def test_close_deletes_everything_and_tolerates_a_missing_folder(tmp_path: Path) -> None:
    store, _, _ = _store(tmp_path)
    folder = store.directory
    store.close()
    assert not folder.exists() and store.directory is None and store.categories() == []
    store.append("c", 0, "good", np.zeros((1, 2)), np.zeros((1, 2), bool))  # usable again: a new folder
    again = store.directory
    assert again is not None and again != folder and store.categories() == ["c"]
    for path in again.iterdir():  # someone cleaned the temporary folder first
        path.unlink()
    again.rmdir()
    store.close()
    assert store.directory is None
