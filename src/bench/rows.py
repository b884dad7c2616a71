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
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import nn

from src.backbone import CLIPBackbone
from src.contracts import Batch

METHODS = ("afr", "fb", "vtfusion", "linear")
#: VTFusion's prototypes come from k normal shots (the paper's largest k); not part of the timing.
VTFUSION_SHOTS = 4


@dataclass(frozen=True)
class Setting:
    """One method's benchmark setting.

    Attributes:
        method: ``afr`` | ``fb`` | ``vtfusion`` | ``linear``.
        backbone: open_clip architecture.
        image_size: input side in pixels.
        layers: vision blocks the method taps (1-based).
        train_batch: images per optimisation step (the paper's batch).
        pos_embed_mode: the backbone's position-embedding mode as the method builds it.
        extra: further constructor arguments of the method's Lightning module.
    """

    method: str
    backbone: str
    image_size: int
    layers: tuple[int, ...]
    train_batch: int
    pos_embed_mode: str = "bicubic_once"
    extra: dict[str, Any] = field(default_factory=dict)


VIT_L = "ViT-L-14-336-quickgelu"
PAPER = {
    "afr": Setting("afr", VIT_L, 518, (6, 12, 18, 24), 4, extra={"sp_cnn_pretrained": "none"}),
    "fb": Setting("fb", VIT_L, 518, (1, 6, 12, 18, 24), 4, "bilinear_per_forward",
                  extra={"activation_checkpointing": True}),
    "vtfusion": Setting("vtfusion", "ViT-B-16-plus-240", 240, (3, 6, 9, 12), 4),
    "linear": Setting("linear", VIT_L, 518, (6, 12, 18, 24), 8),
}
#: ``--quick``: the suite's tiny test ViT, for smoke runs and the unit test.
QUICK = {
    "afr": Setting("afr", "tiny-vit", 64, (2, 3, 4), 2,
                   extra={"sp_cnn_pretrained": "none", "sp_source": "resnet18"}),
    "fb": Setting("fb", "tiny-vit", 64, (1, 2, 3, 4), 2, "bilinear_per_forward",
                  extra={"activation_checkpointing": True}),
    "vtfusion": Setting("vtfusion", "tiny-vit", 64, (1, 2, 3, 4), 2, extra={"prompt_set": "pair"}),
    "linear": Setting("linear", "tiny-vit", 64, (2, 3, 4), 2),
}


def settings(quick: bool) -> dict[str, Setting]:
    return QUICK if quick else PAPER


def parse_row(name: str) -> tuple[str, bool]:
    """``fb`` -> (``fb``, False); ``fb-backbone`` -> (``fb``, True)."""
    method, _, suffix = name.partition("-")
    if method not in METHODS or suffix not in ("", "backbone"):
        valid = [m for m in METHODS] + [f"{m}-backbone" for m in METHODS]
        raise ValueError(f"--row {name!r} is not a benchmark row; valid: {valid}")
    return method, suffix == "backbone"


def build_module(setting: Setting) -> nn.Module:
    """The method's Lightning module on random weights, in the setting's configuration."""
    common = {"backbone": setting.backbone, "pretrained": "none", "image_size": setting.image_size,
              "layers": list(setting.layers), **setting.extra}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loud random-weights warnings: random is the point here
        if setting.method == "afr":
            from src.methods.afrclip import AFRCLIP

            return AFRCLIP(pos_embed_mode=setting.pos_embed_mode, **common)
        if setting.method == "fb":
            from src.methods.fbclip import FBCLIP

            return FBCLIP(**common)
        if setting.method == "linear":
            from src.methods.linear import LinearProbe

            return LinearProbe(pos_embed_mode=setting.pos_embed_mode, **common)
        from src.methods.vtfusion import VTFusion

        module = VTFusion(pos_embed_mode=setting.pos_embed_mode, **common)
        size = setting.image_size
        shots = torch.randn(VTFUSION_SHOTS, 3, size, size, generator=torch.Generator().manual_seed(0))
        module.model.set_text("object")
        module.model.set_prototypes(shots)
        return module


def build_backbone(setting: Setting) -> CLIPBackbone:
    """The frozen backbone alone, built as the method builds it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CLIPBackbone(setting.backbone, "none", image_size=setting.image_size,
                            pos_embed_mode=setting.pos_embed_mode,
                            text_causal_mask=setting.method != "fb")


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
    if setting.method == "vtfusion":  # DAS output: a perturbed copy and its mask
        batch.synthetic_image = images + mask * torch.randn(b, 3, s, s, generator=g)
        batch.synthetic_mask = mask
    return move_data_to_device(batch, device)


def optimizer_of(module: nn.Module) -> torch.optim.Optimizer:
    """The optimiser the module's ``configure_optimizers`` returns (schedules are not stepped)."""
    config = module.configure_optimizers()
    return config["optimizer"] if isinstance(config, dict) else config
