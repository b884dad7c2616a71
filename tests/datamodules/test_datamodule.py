"""AnomalyDataModule: protocols, batch format through real DataLoaders, sample hook, bad options."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from datamodules.base import DatasetError, SampleHook
from datamodules.builtin import generate_builtin
from datamodules.datamodule import AnomalyDataModule
from datamodules.protocols import default_aux_dataset, select_k_shots
from datamodules.registry import dataset_categories
from src.contracts import Batch
from tests.datamodules.conftest import make_folder_dataset


class MarkHook(SampleHook):
    """Dummy synthesis: paints a random-sized square white into ``synthetic_image``, marks it in
    ``synthetic_mask``, and reports the size of its pool as the label."""

    image_keys = ("image", "synthetic_image")
    mask_keys = ("mask", "synthetic_mask")

    def __init__(self, size: int = 3) -> None:
        self.size = size

    def __call__(self, sample, rng, pool):
        assert sample["image"].dtype == np.float32 and 0 <= sample["image"].min() and sample["image"].max() <= 1
        assert sample["mask"].ndim == 2 and isinstance(sample["category"], str)
        side = sample["image"].shape[0]
        top, left = rng.integers(0, side - self.size, size=2)
        painted, mark = sample["image"].copy(), np.zeros_like(sample["mask"])
        painted[top : top + self.size, left : left + self.size] = 1.0
        mark[top : top + self.size, left : left + self.size] = 1.0
        return {"synthetic_image": painted, "synthetic_mask": mark, "label": len(pool)}


class TypoHook(SampleHook):
    def __call__(self, sample, rng, pool):
        return {"synthetic_imgae": sample["image"]}


@pytest.fixture
def roots(tmp_path):
    target = tmp_path / "target"
    make_folder_dataset(target, "widget", n_train=5, n_good=2, defects={"scratch": 2})
    make_folder_dataset(target, "gadget", n_train=3, n_good=1, defects={"dent": 1}, grey=True)
    aux = tmp_path / "aux"
    make_folder_dataset(aux, "bolt", n_train=6, n_good=2, defects={"crack": 3})
    return target, aux


def _dm(roots, **kwargs) -> AnomalyDataModule:
    target, aux = roots
    defaults = {"dataset": "folder", "root": str(target), "image_size": 16, "batch_size": 2, "eval_batch_size": 3}
    defaults.update(kwargs)
    if defaults.get("protocol", "zero-shot") == "zero-shot":
        defaults.setdefault("aux_dataset", "folder")
        defaults.setdefault("aux_root", str(aux))
    dm = AnomalyDataModule(**defaults)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_zero_shot_trains_on_aux_test_split(roots):
    dm = _dm(roots)
    batches = list(dm.train_dataloader())
    paths = [p for b in batches for p in b.path]
    assert len(paths) == 5 and all("/aux/bolt/test/" in p for p in paths)
    assert {int(v) for b in batches for v in b.label} == {0, 1}
    assert "TEST split" in dm.describe() and "convention" in dm.describe()
    val_paths = [p for b in dm.val_dataloader() for p in b.path]
    assert sorted(val_paths) == sorted(paths)
    # the shuffle is seeded: same order for the same seed, another for another seed
    assert [p for b in _dm(roots).train_dataloader() for p in b.path] == paths
    orders = {tuple(p for b in _dm(roots, seed=s).train_dataloader() for p in b.path) for s in range(1, 5)}
    assert len(orders | {tuple(paths)}) > 1


def test_test_loader_batch_format(roots):
    dm = _dm(roots)
    batches = list(dm.test_dataloader())
    batch = batches[0]
    assert isinstance(batch, Batch) and batch.synthetic_image is None and batch.synthetic_mask is None
    assert batch.image.shape == (3, 3, 16, 16) and batch.image.dtype == torch.float32
    assert batch.mask.shape == (3, 1, 16, 16) and batch.mask.dtype == torch.float32
    assert batch.label.dtype == torch.int64 and batch.index.dtype == torch.int64
    assert batch.has_mask.dtype == torch.bool
    assert isinstance(batch.category, list) and isinstance(batch.defect_type, list)
    assert dm.categories == ["gadget", "widget"] and dm.protocol == "zero-shot"
    meta = dm.results_meta()
    assert meta["data"]["aux_dataset"] == "folder" and meta["data"]["n_test_images"] == 6
    assert meta["k_shot_files"] == {}
    index = torch.cat([b.index for b in batches])
    assert index.tolist() == list(range(6))  # 2 categories in one loader, fixed order
    assert {c for b in batches for c in b.category} == {"widget", "gadget"}
    for b in batches:
        normal = b.label == 0
        assert b.mask[normal].sum() == 0 and (b.mask[~normal].flatten(1).sum(1) > 0).all()
        assert all(d == "good" for d, n in zip(b.defect_type, normal) if n)


def test_k_shot_selection(roots):
    dm = _dm(roots, protocol="k-shot", k_shot=2, seed=0)
    assert set(dm.k_shot_files) == {"widget", "gadget"}
    files = dm.k_shot_files["widget"]
    assert len(files) == len(set(files)) == 2 and all(f.startswith("widget/train/good/") for f in files)
    assert _dm(roots, protocol="k-shot", k_shot=2, seed=0).k_shot_files == dm.k_shot_files
    others = [_dm(roots, protocol="k-shot", k_shot=2, seed=s).k_shot_files["widget"] for s in range(1, 6)]
    assert any(o != files for o in others)
    assert dm.results_meta()["k_shot_files"] == dm.k_shot_files and dm.results_meta()["data"]["k_shot"] == 2
    ref = dm.reference_batch("widget")
    assert ref.image.shape == (2, 3, 16, 16) and [p.split("target/")[1] for p in ref.path] == files
    assert ref.category == ["widget", "widget"] and ref.label.tolist() == [0, 0]
    assert dm.val_dataloader() == []
    with pytest.raises(DatasetError, match="unknown category 'bolt'"):
        dm.reference_batch("bolt")


def test_k_shot_too_large_lists_available(roots):
    with pytest.raises(DatasetError, match="k_shot=4 but category 'gadget' has only 3 normal train images"):
        _dm(roots, protocol="k-shot", k_shot=4)


def test_select_k_shots_ignores_listing_order(folder_root):
    from datamodules.folder import FolderReader

    samples = FolderReader().read(folder_root, "train")
    forward = select_k_shots(samples, 3, seed=7)
    backward = select_k_shots(list(reversed(samples)), 3, seed=7)
    assert {c: [s.image_path for s in v] for c, v in forward.items()} == {
        c: [s.image_path for s in v] for c, v in backward.items()
    }


def test_k_shot_stream_with_sample_hook(roots):
    stream = {"protocol": "k-shot", "k_shot": 2, "train_steps": 3, "sample_hook": f"{__name__}.MarkHook"}
    stream["sample_hook_args"] = {"size": 4}
    dm = _dm(roots, **stream)
    batches = list(dm.train_dataloader())
    assert len(batches) == 3 and sum(len(b.index) for b in batches) == 6
    batch = batches[0]
    assert isinstance(batch, Batch)
    assert batch.synthetic_image.shape == batch.image.shape == (2, 3, 16, 16)
    assert batch.synthetic_mask.shape == (2, 1, 16, 16) and (batch.synthetic_mask.flatten(1).sum(1) == 16).all()
    assert (batch.label == 1).all()  # k=2: the pool holds the one other shot
    white = (1.0 - torch.tensor([0.48145466, 0.4578275, 0.40821073])) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711]
    )
    marked = batch.synthetic_mask[0, 0] > 0
    assert torch.allclose(batch.synthetic_image[0][:, marked], white[:, None].expand(3, 16), atol=1e-5)
    assert not torch.allclose(batch.image[0][:, marked], batch.synthetic_image[0][:, marked])

    def corners(loader) -> torch.Tensor:
        return torch.cat([b.synthetic_mask.flatten(1).argmax(1) for b in loader])

    # deterministic per (seed, index), and independent of the number of workers
    again = list(_dm(roots, **stream).train_dataloader())
    assert [b.path for b in again] == [b.path for b in batches]
    assert torch.equal(corners(again), corners(batches))
    assert torch.equal(corners(_dm(roots, **stream, num_workers=2).train_dataloader()), corners(batches))
    assert not torch.equal(corners(_dm(roots, **stream, seed=1).train_dataloader()), corners(batches))


def test_a_hook_key_outside_the_batch_fields_is_refused(roots):
    dm = _dm(roots, protocol="k-shot", k_shot=2, sample_hook=f"{__name__}.TypoHook")
    with pytest.raises(DatasetError, match=r"unknown batch field\(s\) \['synthetic_imgae'\]; the batch fields are"):
        next(iter(dm.train_dataloader()))


def test_bad_options(roots, tmp_path):
    target, aux = roots
    with pytest.raises(DatasetError, match="dataset 'mvtec2' is not one of"):
        AnomalyDataModule(dataset="mvtec2")
    with pytest.raises(DatasetError, match="protocol 'few-shot' is not one of"):
        AnomalyDataModule(protocol="few-shot")
    with pytest.raises(DatasetError, match="k-shot needs k_shot >= 1"):
        AnomalyDataModule(protocol="k-shot")
    with pytest.raises(DatasetError, match="aux_dataset 'folder' is the evaluated dataset"):
        AnomalyDataModule(dataset="folder", root=str(target), aux_dataset="folder", aux_root=str(target))
    with pytest.raises(DatasetError, match="shares categories"):
        AnomalyDataModule(dataset="builtin-A", aux_dataset="builtin")
    with pytest.raises(DatasetError, match="sample_hook 'nowhere.Hook' cannot be imported"):
        AnomalyDataModule(dataset="folder", root=str(target), aux_dataset="none", sample_hook="nowhere.Hook")
    missing = AnomalyDataModule(dataset="folder", root=str(tmp_path / "nope"), aux_dataset="none")
    with pytest.raises(DatasetError, match=f"dataset root {tmp_path / 'nope'} does not exist"):
        missing.setup("test")
    no_root = AnomalyDataModule(dataset="mvtec", aux_dataset="none")
    with pytest.raises(DatasetError, match="mvtec: no dataset root given; set it with --data.init_args.root"):
        no_root.setup("test")
    bad_category = AnomalyDataModule(dataset="folder", root=str(target), categories=["nut"], aux_dataset="none")
    with pytest.raises(DatasetError, match=r"unknown category \['nut'\].*valid: \['gadget', 'widget'\]"):
        bad_category.setup("test")
    no_aux_root = AnomalyDataModule(dataset="folder", root=str(target))  # default aux: mvtec
    with pytest.raises(DatasetError, match="'mvtec' needs its folder: set --data.init_args.aux_root"):
        no_aux_root.setup("fit")
    training_free = AnomalyDataModule(dataset="folder", root=str(target), aux_dataset="none")
    training_free.setup("fit")
    with pytest.raises(DatasetError, match="no training data"):
        training_free.train_dataloader()
    assert training_free.val_dataloader() == []


def test_unreadable_file_fails_in_setup_before_training(roots):
    target, _ = roots
    (target / "widget" / "test" / "scratch" / "001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match=r"unreadable image file .*widget/test/scratch/001\.png"):
        _dm(roots)


def test_test_stage_does_not_need_aux_data(roots, tmp_path):
    target, _ = roots
    dm = AnomalyDataModule(dataset="folder", root=str(target), aux_dataset="folder", aux_root=str(tmp_path / "gone"))
    dm.setup("test")
    assert len(dm.test_samples) == 6
    with pytest.raises(DatasetError, match="does not exist"):
        dm.setup("fit")


def test_default_pairing():
    assert dataset_categories("mvtec")[:2] == ["bottle", "cable"]  # fixed lists need no root
    assert AnomalyDataModule(dataset="visa", categories=["pcb1"]).categories == ["pcb1"]
    assert default_aux_dataset("mvtec") == "visa"
    assert default_aux_dataset("visa") == "mvtec"
    assert default_aux_dataset("folder") == "mvtec"
    assert default_aux_dataset("builtin-A") == "builtin-B" and default_aux_dataset("builtin-B") == "builtin-A"


def test_builtin_cross_half_through_lightning(tmp_path):
    """builtin-B evaluated, builtin-A trained; a real Trainer consumes the loaders."""
    root = generate_builtin(tmp_path / "builtin-v1", n_train=2, n_test_good=1, n_per_defect=1, progress=False)
    assert dataset_categories("builtin-A") == ["brick", "gravel", "coins", "chelsea", "retina"]
    dm = AnomalyDataModule(dataset="builtin-B", root=str(root), image_size=16, batch_size=4)  # aux: builtin-A there

    class Probe(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(3, 1)
            self.seen: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}

        def _step(self, batch, stage):
            self.seen[stage].update(batch.category)
            return self.layer(batch.image.mean(dim=(2, 3))).mean()

        def training_step(self, batch, batch_idx):
            return self._step(batch, "train")

        def validation_step(self, batch, batch_idx):
            self._step(batch, "val")

        def test_step(self, batch, batch_idx):
            self._step(batch, "test")

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    probe = Probe()
    trainer = L.Trainer(
        max_steps=3, limit_val_batches=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(probe, datamodule=dm)
    trainer.test(probe, datamodule=dm, verbose=False)
    half_a, half_b = {"brick", "gravel", "coins", "chelsea", "retina"}, {"grass", "coffee", "astronaut"}
    assert probe.seen["train"] <= half_a and probe.seen["val"] <= half_a and probe.seen["train"]
    assert probe.seen["test"] == half_b | {"immunohistochemistry", "cell"}
