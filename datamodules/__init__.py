"""Data in, one batch format out: readers, validation, transforms, protocols, the DataModule.

See ``src.contracts.Batch`` for the batch contract and ``datamodules.datamodule`` for the loaders.
"""

from datamodules.base import NORMAL_DEFECT, AnomalyDataset, DatasetError, Sample, SampleHook
from datamodules.builtin import BUILTIN_A, BUILTIN_B, BUILTIN_CATEGORIES, DEFECT_TYPES, ensure_builtin
from datamodules.datamodule import AnomalyDataModule
from datamodules.names import object_name
from datamodules.registry import DATASETS, dataset_categories, make_reader
from datamodules.transforms import CLIP_MEAN, CLIP_STD, Preprocessor, denormalize

__all__ = [
    "BUILTIN_A",
    "BUILTIN_B",
    "BUILTIN_CATEGORIES",
    "CLIP_MEAN",
    "CLIP_STD",
    "DATASETS",
    "DEFECT_TYPES",
    "NORMAL_DEFECT",
    "AnomalyDataModule",
    "AnomalyDataset",
    "DatasetError",
    "Preprocessor",
    "Sample",
    "SampleHook",
    "dataset_categories",
    "denormalize",
    "ensure_builtin",
    "make_reader",
    "object_name",
]
