"""What each benchmark row builds: a method in its paper setting, or its bare backbone.

A row is ``<method>`` (the method's pure torch model, eval, frozen parts as in training) or
``<method>-backbone`` (the frozen :class:`~src.backbone.CLIPBackbone` built exactly as the method
builds it, running ``encode_image_layers`` on the layers the method taps). Weights are random
(``pretrained="none"``): the cost of a forward does not depend on their values.

Methods are built through their Lightning modules, so the models are configured exactly as
``make train`` configures them; inference calls ``module.model`` (the torch model) and training
calls ``module.training_losses`` and the module's own optimiser.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn

from src import registry
from src.backbone import CLIPBackbone
from src.contracts import Batch
from src.registry import BenchSetting as Setting

__all__ = ["METHODS", "PAPER", "QUICK", "Setting", "build_backbone", "build_module", "inference_fn", "optimizer_of",
           "parse_row", "settings", "train_batch"]

#: Methods with a benchmark row, and their settings: all declared by the methods (``src/registry.py``).
METHODS = registry.bench_methods()
PAPER = {m: registry.get(m).bench_paper for m in METHODS}
#: ``--quick``: the suite's tiny test ViT, for smoke runs and the unit test.
QUICK = {m: registry.get(m).bench_quick for m in METHODS}


def settings(quick: bool) -> dict[str, Setting]:
    return QUICK if quick else PAPER


def parse_row(name: str) -> tuple[str, bool]:
    """``<method>`` -> (``<method>``, False); ``<method>-backbone`` -> (``<method>``, True)."""
    method, _, suffix = name.partition("-")
    if method not in METHODS or suffix not in ("", "backbone"):
        valid = [m for m in METHODS] + [f"{m}-backbone" for m in METHODS]
        raise ValueError(f"--row {name!r} is not a benchmark row; valid: {valid}")
    return method, suffix == "backbone"


def build_module(setting: Setting) -> nn.Module:
    """The method's Lightning module on random weights, in the setting's configuration."""
    spec = registry.get(setting.method)
    kwargs = {"backbone": setting.backbone, "pretrained": "none", "image_size": setting.image_size,
              "layers": list(setting.layers), **setting.extra}
    if setting.module_pos_embed:
        kwargs["pos_embed_mode"] = setting.pos_embed_mode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loud random-weights warnings: random is the point here
        module = spec.lightning_module()(**kwargs)
        if spec.bench_prepare is not None:
            spec.bench_prepare(module, setting)
    return module


def build_backbone(setting: Setting) -> CLIPBackbone:
    """The frozen backbone alone, built as the method builds it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CLIPBackbone(setting.backbone, "none", image_size=setting.image_size,
                            pos_embed_mode=setting.pos_embed_mode,
                            text_causal_mask=setting.text_causal_mask)


def inference_fn(setting: Setting, backbone_only: bool) -> tuple[nn.Module, Callable[[torch.Tensor], Any]]:
    """(module to move / cast, ``fn(images)`` running one forward of the row)."""
    if backbone_only:
        backbone = build_backbone(setting)
        layers = list(setting.layers)
        return backbone, lambda images: backbone.encode_image_layers(images, layers)
    model = build_module(setting).model
    return model, lambda images: model(images, ["object"] * images.shape[0])


def train_batch(setting: Setting, device: torch.device, seed: int = 0) -> Batch:
    """A synthetic training batch at the paper's batch size: half normal, half with a square defect."""
    g = torch.Generator().manual_seed(seed)
    b, s = setting.train_batch, setting.image_size
    images = torch.randn(b, 3, s, s, generator=g)
    mask = torch.zeros(b, 1, s, s)
    mask[1::2, :, s // 4: s // 2, s // 4: s // 2] = 1
    label = (mask.flatten(1).amax(1) > 0).long()
    batch = Batch(image=images, mask=mask, label=label, category=["object"] * b,
                  defect_type=["square" if y else "good" for y in label.tolist()], path=[""] * b,
                  index=torch.arange(b), has_mask=torch.ones(b, dtype=torch.bool))
    extend = registry.get(setting.method).bench_batch
    if extend is not None:  # fields only this method's training step reads
        extend(batch, g)
    return move_data_to_device(batch, device)


def optimizer_of(module: nn.Module) -> torch.optim.Optimizer:
    """The optimiser the module's ``configure_optimizers`` returns (schedules are not stepped)."""
    config = module.configure_optimizers()
    return config["optimizer"] if isinstance(config, dict) else config
