"""``AnomalyDataModule``: one LightningDataModule for every dataset and protocol.

Configured from YAML or the CLI with flat arguments (``--data.init_args.<name>=...``)::

    data:
      class_path: datamodules.AnomalyDataModule
      init_args: {dataset: mvtec, root: /data/mvtec, protocol: zero-shot, aux_root: /data/visa}

Loaders (each yields :class:`src.contracts.Batch`):

* ``test_dataloader``: the target's test split, all selected categories in one loader (per-category
  metrics come from ``Batch.category``), in a fixed order; ``index`` = position in it.
* zero-shot ``train_dataloader``: the auxiliary dataset's TEST split, all its categories, shuffled
  by a generator seeded with ``seed``; ``val_dataloader``: the same auxiliary data without
  augmentation, never target data (empty when ``aux_dataset`` is ``none``).
* k-shot ``train_dataloader``: ``ShotStream`` of ``train_steps * batch_size`` items (default: one
  item per shot) drawn with replacement from the k shots; ``reference_batch(category)`` gives the
  k shots as one tensor for training-free few-shot methods; ``k_shot_files`` lists them.

``prepare_data`` generates the built-in benchmark if needed (rank 0); ``setup`` reads and validates
every file it will use (missing root/category, unreadable image, mask size mismatch, orphan mask)
before training starts, raising ``DatasetError``.

Public API: ``AnomalyDataModule``.
"""

from __future__ import annotations

import os
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from datamodules.base import AnomalyDataset, DatasetError, Sample, validate_samples
from datamodules.loaders import collate_batch, load_hook, make_loader
from datamodules.protocols import ShotStream, check_no_shared_files, resolve_aux_dataset, select_k_shots
from datamodules.registry import DATASETS, make_reader
from datamodules.transforms import Preprocessor
from src.contracts import Batch


class AnomalyDataModule(L.LightningDataModule):
    """Data for zero-/few-shot anomaly detection; see the module docstring for the loaders.

    Args:
        dataset: builtin | builtin-A | builtin-B | mvtec | visa | folder.
        root: dataset folder (None: the cache folder for the built-in benchmark).
        categories: subset of categories (None: all).
        protocol: ``zero-shot`` (cross-dataset) or ``k-shot``.
        aux_dataset: training data of the zero-shot protocol (None: the papers' pairing;
            ``"none"``: no training data).
        aux_root, aux_categories: as root/categories, for the auxiliary dataset.
        k_shot: shots per category (k-shot protocol only; >= 1).
        seed: seeds shuffling, shot selection, the k-shot stream, augmentation and the hook.
        image_size: side S of the square model input.
        batch_size, eval_batch_size: train and val/test batch sizes.
        num_workers: DataLoader worker processes.
        image_interpolation, mask_interpolation: see ``datamodules.transforms``.
        train_augment: flips, small rotations and colour jitter on train images.
        image_extensions, mask_suffix, mask_extensions: options of the ``folder`` reader.
        check_counts: assert published counts for full MVTec/VisA copies.
        sample_hook: dotted path of a sample-hook class (see ``datamodules.base.SampleHook``),
            instantiated as ``cls(**sample_hook_args)``; applied to train samples.
        train_steps: k-shot stream length in batches.
        cache_dir: parent folder of the built-in benchmark (else ``$ADSUITE_CACHE``).
    """

    def __init__(
        self,
        dataset: str = "builtin-B",
        root: str | None = None,
        categories: list[str] | None = None,
        protocol: str = "zero-shot",
        aux_dataset: str | None = None,
        aux_root: str | None = None,
        aux_categories: list[str] | None = None,
        k_shot: int = 0,
        seed: int = 0,
        image_size: int = 224,
        batch_size: int = 4,
        eval_batch_size: int = 8,
        num_workers: int = 0,
        image_interpolation: str = "bicubic",
        mask_interpolation: str = "nearest",
        train_augment: bool = False,
        image_extensions: list[str] | None = None,
        mask_suffix: str = "_mask",
        mask_extensions: list[str] | None = None,
        check_counts: bool = True,
        sample_hook: str | None = None,
        sample_hook_args: dict | None = None,
        train_steps: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if dataset not in DATASETS:
            raise DatasetError(f"dataset '{dataset}' is not one of {sorted(DATASETS)}")
        for option, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise DatasetError(f"{option} must be a positive integer, got {value!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise DatasetError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        if train_steps is not None and (not isinstance(train_steps, int) or train_steps < 1):
            raise DatasetError(f"train_steps must be a positive integer or None, got {train_steps!r}")
        aux = resolve_aux_dataset(protocol, k_shot, dataset, root, aux_dataset, aux_root)
        self.aux_dataset = aux
        self.preprocessor = Preprocessor(image_size, image_interpolation, mask_interpolation, seed=seed)
        reader_options = {
            "check_counts": check_counts,
            "image_extensions": image_extensions,
            "mask_suffix": mask_suffix,
            "mask_extensions": mask_extensions,
            "cache_dir": cache_dir,
        }
        self.reader = make_reader(dataset, **reader_options)
        self.aux_reader = make_reader(aux, **reader_options) if aux is not None else None
        self.sample_hook = load_hook(sample_hook, sample_hook_args) if sample_hook else None

        self.test_samples: list[Sample] = []
        self.aux_samples: list[Sample] = []
        self.shots: dict[str, list[Sample]] = {}
        self.k_shot_files: dict[str, list[str]] = {}
        self._last_description = ""

    # ------------------------------------------------------------------ lifecycle

    @property
    def protocol(self) -> str:
        """``zero-shot`` or ``k-shot`` (methods check it before asking for references)."""
        return self.hparams.protocol

    @property
    def categories(self) -> list[str]:
        """Evaluated categories, in loader order (the selection, or all of the dataset's before setup)."""
        if self.test_samples:
            return list(dict.fromkeys(s.category for s in self.test_samples))
        return self.reader.select(self.hparams.root, self.hparams.categories)

    def results_meta(self) -> dict[str, Any]:
        """What the data side contributes to ``metrics.json`` (the metrics callback merges it)."""
        hp = self.hparams
        data = {
            "dataset": hp.dataset,
            "root": str(self._root_of(self.reader, hp.root)),
            "protocol": hp.protocol,
            "categories": self.categories,
            "n_test_images": len(self.test_samples),
            "image_size": hp.image_size,
            "image_interpolation": hp.image_interpolation,
            "mask_interpolation": hp.mask_interpolation,
            "seed": hp.seed,
        }
        if hp.protocol == "k-shot":
            data["k_shot"] = hp.k_shot
        else:
            data["aux_dataset"] = self.aux_dataset
            data["aux_split"] = "test" if self.aux_dataset else None
            data["n_aux_images"] = len(self.aux_samples)
        return {"protocol": hp.protocol, "k_shot_files": dict(self.k_shot_files), "data": data}

    @property
    def aux_root(self) -> str | None:
        """``aux_root``; for a built-in half trained beside a built-in target, the target's root."""
        hp = self.hparams
        if hp.aux_root is None and hp.dataset.startswith("builtin") and str(self.aux_dataset).startswith("builtin"):
            return hp.root
        return hp.aux_root

    def prepare_data(self) -> None:
        """Generate the built-in benchmark(s) if absent (Lightning calls this on one process)."""
        for reader, root in ((self.reader, self.hparams.root), (self.aux_reader, self.aux_root)):
            if reader is not None and hasattr(reader, "prepare"):
                reader.prepare(root)

    def setup(self, stage: str | None = None) -> None:
        """Read and validate the sample tables this stage needs (idempotent)."""
        hp = self.hparams
        if not self.test_samples:
            self.test_samples = self.reader.read(hp.root, "test", hp.categories)
            validate_samples(self.test_samples, f"{hp.dataset} test split")
        if hp.protocol == "k-shot" and not self.shots:
            train = self.reader.read(hp.root, "train", sorted({s.category for s in self.test_samples}))
            self.shots = select_k_shots(train, hp.k_shot, hp.seed)
            validate_samples([s for shots in self.shots.values() for s in shots], f"{hp.dataset} k-shot references")
            root = self._root_of(self.reader, hp.root)
            self.k_shot_files = {
                c: [os.path.relpath(s.image_path, root) for s in shots] for c, shots in self.shots.items()
            }
        needs_aux = stage in (None, "fit", "validate")
        if hp.protocol == "zero-shot" and needs_aux and self.aux_reader is not None and not self.aux_samples:
            if self.aux_root is None and not hasattr(self.aux_reader, "prepare"):
                raise DatasetError(
                    f"zero-shot training data '{self.aux_dataset}' needs its folder: set "
                    f"--data.init_args.aux_root=<folder> (or aux_dataset=none for training-free methods)"
                )
            self.aux_samples = self.aux_reader.read(self.aux_root, "test", hp.aux_categories)
            validate_samples(self.aux_samples, f"{self.aux_dataset} test split (auxiliary training data)")
            check_no_shared_files(self.test_samples, self.aux_samples)
        description = self.describe()
        if description != self._last_description:  # once per run, again only if the tables changed
            self._last_description = description
            rank_zero_info(description)

    def describe(self) -> str:
        """One paragraph saying which data trains and which evaluates."""
        hp = self.hparams
        n = len({s.category for s in self.test_samples})
        plural = "category" if n == 1 else "categories"
        evaluate = f"evaluates on {hp.dataset} test split ({len(self.test_samples)} images, {n} {plural})"
        if hp.protocol == "k-shot":
            shots = ", ".join(f"{c}: {files}" for c, files in self.k_shot_files.items())
            return (
                f"[data] k-shot (k={hp.k_shot}, seed={hp.seed}): references from {hp.dataset} train split; "
                f"{evaluate}. Shots: {shots}"
            )
        if self.aux_reader is None:
            return f"[data] zero-shot without training data (aux_dataset none); {evaluate}."
        trained = (
            f"trains on {self.aux_dataset} TEST split ({len(self.aux_samples)} images)"
            if self.aux_samples
            else f"trains on {self.aux_dataset} TEST split (read at fit time)"
        )
        return (
            f"[data] zero-shot cross-dataset: {trained}, the field's convention (AnomalyCLIP, FB-CLIP, "
            f"AFR-CLIP: auxiliary test split for training, never the evaluated data); {evaluate}."
        )

    # ------------------------------------------------------------------ loaders

    def train_dataloader(self) -> DataLoader:
        """Training loader (the auxiliary set, or the k shots), shuffled with the run's seed."""
        hp = self.hparams
        if hp.protocol == "k-shot":
            self._require_setup(bool(self.shots), "train_dataloader")
            length = hp.train_steps * hp.batch_size if hp.train_steps else sum(len(s) for s in self.shots.values())
            dataset: AnomalyDataset = ShotStream(
                self.shots, self.preprocessor, length, hp.train_augment, self.sample_hook, hp.seed
            )
            return self._loader(dataset, hp.batch_size, shuffle=False)
        if self.aux_reader is None:
            raise DatasetError(
                f"no training data: the zero-shot protocol on '{hp.dataset}' has aux_dataset none; "
                "set --data.init_args.aux_dataset=<dataset> (and aux_root) to train"
            )
        self._require_setup(bool(self.aux_samples), "train_dataloader")
        dataset = AnomalyDataset(self.aux_samples, self.preprocessor, hp.train_augment, self.sample_hook, hp.seed)
        return self._loader(dataset, hp.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation loader(s): the evaluated split, as in test."""
        if self.hparams.protocol == "k-shot" or self.aux_reader is None:
            return []
        self._require_setup(bool(self.aux_samples), "val_dataloader")
        return self._loader(AnomalyDataset(self.aux_samples, self.preprocessor), self.hparams.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        """Loader of the evaluated split, in a fixed order."""
        self._require_setup(bool(self.test_samples), "test_dataloader")
        return self._loader(AnomalyDataset(self.test_samples, self.preprocessor), self.hparams.eval_batch_size)

    def reference_batch(self, category: str) -> Batch:
        """The k shots of ``category`` as one :class:`Batch` (``image`` (k, 3, S, S), ``path``, ...)."""
        if self.hparams.protocol != "k-shot":
            raise DatasetError("reference_batch needs protocol='k-shot' (with k_shot >= 1)")
        self._require_setup(bool(self.shots), "reference_batch")
        if category not in self.shots:
            raise DatasetError(f"reference_batch: unknown category '{category}'; valid: {sorted(self.shots)}")
        dataset = AnomalyDataset(self.shots[category], self.preprocessor)
        return collate_batch([dataset[i] for i in range(len(dataset))])

    # ------------------------------------------------------------------ helpers

    def _loader(self, dataset: AnomalyDataset, batch_size: int, shuffle: bool = False) -> DataLoader:
        return make_loader(dataset, batch_size, self.hparams.seed, self.hparams.num_workers, shuffle)

    def _require_setup(self, ready: bool, what: str) -> None:
        if not ready:
            raise RuntimeError(f"AnomalyDataModule.{what}() called before setup(); call prepare_data() and setup()")

    @staticmethod
    def _root_of(reader: Any, root: str | None) -> str:
        resolve = getattr(reader, "resolve_root", None)
        return str(resolve(root)) if resolve is not None else str(root)
