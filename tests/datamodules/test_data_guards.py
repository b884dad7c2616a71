"""Data attacks that used to pass: a truncated JPEG, the evaluated folder spelt another way, a
sample hook naming an arbitrary callable."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from datamodules.base import DatasetError, Sample, validate_samples
from datamodules.datamodule import AnomalyDataModule
from datamodules.protocols import check_disjoint, check_no_shared_files
from tests.datamodules.conftest import make_folder_dataset


def _jpeg(path: Path) -> Path:
    rng = np.random.default_rng(0)
    image = (rng.random((64, 48, 3)) * 255).astype(np.uint8)  # noise: the data fills most of the file
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def test_truncated_jpeg_is_refused_by_name(tmp_path: Path) -> None:
    intact = _jpeg(tmp_path / "intact.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(intact.read_bytes()[: intact.stat().st_size * 2 // 3])
    assert cv2.imread(str(cut)) is not None, "OpenCV decodes the truncated file (and fills the rest)"
    validate_samples([Sample(str(intact), None, 0, "c", "good", "test")], "test")
    with pytest.raises(DatasetError, match=rf"unreadable image file {cut}: OSError: image file is truncated"):
        validate_samples([Sample(str(intact), None, 0, "c", "good", "test"),
                          Sample(str(cut), None, 0, "c", "good", "test")], "test")


@pytest.mark.parametrize("spelling", ["trailing-slash", "dot-slash", "symlink", "relative"])
def test_the_evaluated_folder_spelt_another_way_is_refused(tmp_path: Path, spelling: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "x"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    monkeypatch.chdir(tmp_path)
    aux = {"trailing-slash": f"{data}/", "dot-slash": f"{data}/./", "symlink": str(tmp_path / "link"),
           "relative": "x"}[spelling]
    with pytest.raises(DatasetError, match="aux_dataset 'folder' is the evaluated dataset"):
        check_disjoint("folder", str(data), "folder", aux)
    with pytest.raises(DatasetError, match="same real path"):
        check_disjoint("mvtec", str(data), "visa", aux)  # another name, the same files
    check_disjoint("folder", str(data), "folder", str(tmp_path))


def test_auxiliary_files_shared_with_the_evaluated_split_are_refused(tmp_path: Path) -> None:
    target = make_folder_dataset(tmp_path / "target", category="widget")
    other = tmp_path / "aux"
    other.mkdir()
    (other / "widget").symlink_to(target / "widget")  # a different folder holding the same files
    dm = AnomalyDataModule(dataset="folder", root=str(target), aux_dataset="folder", aux_root=str(other),
                           image_size=32)
    with pytest.raises(DatasetError, match=r"shares \d+ file\(s\) with the evaluated test split"):
        dm.setup("fit")
    clean = make_folder_dataset(tmp_path / "clean", category="gadget")
    dm = AnomalyDataModule(dataset="folder", root=str(target), aux_dataset="folder", aux_root=str(clean),
                           image_size=32)
    dm.setup("fit")
    assert len(dm.aux_samples) == 5 and len(dm.test_samples) == 5


def test_check_no_shared_files_compares_real_paths(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    os.symlink(image, tmp_path / "b.png")
    evaluated = [Sample(str(image), None, 0, "c", "good", "test")]
    with pytest.raises(DatasetError, match=r"shares 1 file\(s\)"):
        check_no_shared_files(evaluated, [Sample(str(tmp_path / "b.png"), None, 0, "c", "good", "test")])
    check_no_shared_files(evaluated, [Sample(str(tmp_path / "c.png"), None, 0, "c", "good", "test")])


@pytest.mark.parametrize("hook", ["subprocess.getoutput", "subprocess.Popen", "builtins.dict"])
def test_sample_hook_must_be_a_sample_hook_class(tmp_path: Path, hook: str) -> None:
    target = make_folder_dataset(tmp_path / "t")
    with pytest.raises(DatasetError, match=rf"sample_hook '{hook}' is not a subclass of datamodules.SampleHook"):
        AnomalyDataModule(dataset="folder", root=str(target), aux_dataset="none", sample_hook=hook,
                          sample_hook_args={"cmd": "touch pwned"})
    assert not (Path.cwd() / "pwned").exists()


def test_the_suite_hook_is_accepted(tmp_path: Path) -> None:
    target = make_folder_dataset(tmp_path / "t")
    dm = AnomalyDataModule(dataset="folder", root=str(target), aux_dataset="none", protocol="k-shot", k_shot=1,
                           sample_hook="src.methods.vtfusion.das.DASHook")
    assert type(dm.sample_hook).__name__ == "DASHook"
