"""metrics.json / metrics.csv text and the atomic writers, value by value on hand-built results."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from src.metrics import io as metrics_io
from src.metrics.io import atomic_write_text, metrics_csv, metrics_json, to_jsonable, write_metrics, write_predictions

NAN = float("nan")


class _ItemWithoutNdim:
    """Has a callable ``item`` but no ``ndim``: not a 0-d array, so it must be left alone."""

    def item(self) -> float:
        return 1.0


def test_to_jsonable_unwraps_0d_scalars_and_drops_non_finite() -> None:
    odd = _ItemWithoutNdim()
    got = to_jsonable({1: (np.float32(0.5), np.int64(3), torch.tensor(2.0)), "x": [NAN, math.inf, -math.inf, 0.25],
                       "s": "text", "n": None, "odd": odd, "np_nan": np.float32("nan")})
    assert got == {"1": [0.5, 3, 2.0], "x": [None, None, None, 0.25], "s": "text", "n": None, "odd": odd,
                   "np_nan": None}
    # numpy / torch scalars become Python numbers (json.dumps refuses numpy integers)
    assert [type(v) for v in got["1"]] == [float, int, float]
    one = np.array([2.5])  # 1-d: left as it is, even with a single element
    assert to_jsonable(one) is one


def test_metrics_json_text_is_pinned() -> None:
    result = {"mean": {"a": np.float64(0.5), "b": NAN}, "meta": {"n": np.int64(2)}}
    assert metrics_json(result) == (
        '{\n  "mean": {\n    "a": 0.5,\n    "b": null\n  },\n  "meta": {\n    "n": 2\n  }\n}\n'
    )


def _result() -> dict:
    return {
        "categories": {"bottle": {"image_auroc": 0.75, "image_ap": NAN, "pixel_aupro": 1},
                       "cable": {}},
        "defect_types": {"bottle/crack": {"image_auroc": 0.125, "pixel_f1max": None}},
        "mean": {"image_auroc": 0.4375, "pixel_auroc": 0.1},
    }


def test_metrics_csv_text_is_pinned() -> None:
    # columns: image_auroc, image_ap, image_f1max, pixel_auroc, pixel_ap, pixel_f1max, pixel_aupro;
    # NaN, None and missing keys are empty cells, numbers their float repr
    assert metrics_csv(_result()) == (
        "name,level,image_auroc,image_ap,image_f1max,pixel_auroc,pixel_ap,pixel_f1max,pixel_aupro\n"
        "bottle,category,0.75,,,,,,1.0\n"
        "cable,category,,,,,,,\n"
        "bottle/crack,defect_type,0.125,,,,,,\n"
        "mean,mean,0.4375,,,0.1,,,\n"
    )


def _spy_replace(monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> list[tuple[Path, Path]]:
    """Records the (temporary, final) paths of every ``os.replace``; ``fail`` makes it raise instead."""
    calls: list[tuple[Path, Path]] = []
    real = os.replace

    def replace(src: str, dst: str) -> None:
        calls.append((Path(src), Path(dst)))
        if fail:
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(metrics_io.os, "replace", replace)
    return calls


def test_atomic_write_text_goes_through_a_hidden_file_next_to_the_target(tmp_path: Path, monkeypatch) -> None:
    calls = _spy_replace(monkeypatch)
    target = tmp_path / "new" / "deeper" / "out.txt"  # parent folders are created
    atomic_write_text(target, "naïve ✓\n")
    atomic_write_text(target, "second\n")  # the folder now exists: no error, the file is replaced
    assert target.read_bytes() == b"second\n"
    atomic_write_text(target.parent / "u.txt", "naïve ✓\n")
    assert (target.parent / "u.txt").read_bytes() == "naïve ✓\n".encode()
    for tmp, final in calls:
        # same folder: a rename, never a copy across file systems; hidden: no reader picks it up
        assert tmp.parent == final.parent and tmp.name.startswith(f".{final.name}.")
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt", "u.txt"]


def test_atomic_write_text_failure_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    _spy_replace(monkeypatch, fail=True)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(tmp_path / "out.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_write_metrics_writes_both_files(tmp_path: Path) -> None:
    result = {**_result(), "meta": {"n": 1}}
    json_path, csv_path = write_metrics(result, tmp_path / "run")
    assert (json_path, csv_path) == (tmp_path / "run" / "metrics.json", tmp_path / "run" / "metrics.csv")
    assert json_path.read_text() == metrics_json(result)
    assert json.loads(json_path.read_text())["categories"]["bottle"] == {
        "image_auroc": 0.75, "image_ap": None, "pixel_aupro": 1}
    assert csv_path.read_text() == metrics_csv(result)


def _predictions() -> dict:
    return {"anomaly_maps": np.arange(8, dtype=np.float64).reshape(2, 2, 2) / 8,
            "masks": np.array([[[False, True], [True, True]], [[False] * 2] * 2]),
            "scores": np.array([0.25, 0.5], np.float32), "labels": np.array([1, 0], np.int32),
            "categories": [np.str_("bottle"), "cable"], "defect_types": ["crack", 7]}


@pytest.mark.parametrize("paths", [None, ["a.png", Path("b.png")]])
def test_write_predictions_round_trip(tmp_path: Path, monkeypatch, paths) -> None:
    calls = _spy_replace(monkeypatch)
    given = _predictions()
    target = tmp_path / "sub" / "deeper" / "predictions.npz"  # parent folders are created
    assert write_predictions(target, **given, paths=paths) == target
    with np.load(target) as saved:
        arrays = {k: saved[k] for k in saved.files}
    expected = {"anomaly_maps": (np.float32, given["anomaly_maps"]), "masks": (np.uint8, given["masks"]),
                "scores": (np.float64, [0.25, 0.5]), "labels": (np.int64, [1, 0]),
                "categories": (np.str_, ["bottle", "cable"]), "defect_types": (np.str_, ["crack", "7"])}
    if paths is not None:
        expected["paths"] = (np.str_, ["a.png", "b.png"])
    assert sorted(arrays) == sorted(expected)
    for key, (dtype, values) in expected.items():
        assert arrays[key].dtype.type is dtype, key
        np.testing.assert_array_equal(arrays[key], np.asarray(values).astype(dtype), err_msg=key)
    (tmp, final), = calls
    assert final == target and tmp.parent == target.parent and tmp.name.startswith(".predictions.npz.")
    assert [p.name for p in target.parent.iterdir()] == ["predictions.npz"]


def test_write_predictions_failure_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    _spy_replace(monkeypatch, fail=True)
    with pytest.raises(OSError, match="disk full"):
        write_predictions(tmp_path / "p.npz", **_predictions())
    assert list(tmp_path.iterdir()) == []
