"""``python -m src.metrics`` refuses predictions that cannot be right, with one line naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from src.metrics.__main__ import main


def _arrays(n: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    masks = np.zeros((n, 8, 8), np.uint8)
    masks[n // 2:, 2:5, 2:5] = 1
    return {"anomaly_maps": rng.random((n, 8, 8)).astype(np.float32), "masks": masks,
            "scores": rng.random(n), "labels": np.array([0] * (n // 2) + [1] * (n - n // 2)),
            "categories": np.array(["c"] * n)}


def _run(tmp_path: Path, capsys: pytest.CaptureFixture, **changes: np.ndarray) -> tuple[int, str]:
    arrays = {**_arrays(), **changes}
    path = tmp_path / "pred.npz"
    np.savez(path, **arrays)
    code = main([str(path)])
    return code, capsys.readouterr().err


def test_valid_predictions_pass(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _run(tmp_path, capsys)
    assert code == 0 and err == ""


def test_normal_image_with_a_mask_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    masks = _arrays()["masks"]
    masks[0, 0, 0] = 1
    code, err = _run(tmp_path, capsys, masks=masks)
    assert code == 2 and "1 image(s) labelled 0 (normal) have a non-empty mask, e.g. index 0" in err


@pytest.mark.parametrize("labels", [[0, 0, 1, 1.5], [0.5, 0, 1, 1], [0, 0, 1, 2]])
def test_labels_other_than_0_and_1_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, labels: list) -> None:
    code, err = _run(tmp_path, capsys, labels=np.array(labels))
    assert code == 2 and "labels must be 0 (normal) or 1 (anomalous)" in err


def test_zero_images_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = {"anomaly_maps": np.zeros((0, 8, 8), np.float32), "masks": np.zeros((0, 8, 8), np.uint8),
             "scores": np.zeros(0), "labels": np.zeros(0, np.int64), "categories": np.array([], dtype="<U1")}
    code, err = _run(tmp_path, capsys, **empty)
    assert code == 2 and "N = 0 images" in err


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_zip_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, damage: str) -> None:
    good = tmp_path / "good.npz"
    np.savez(good, **_arrays(64))
    bad = tmp_path / "bad.npz"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"PK\x03\x04" + b"\x00" * 200)
    code = main([str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {bad}: not a readable .npz file")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
