"""Trainable-parameter count of VTFusion at the paper size, against the figures computed from the architecture.

    python -m src.methods.vtfusion.params [--backbone ViT-B-16-plus-240 --image-size 240]

Builds the model with random weights (``pretrained=none``; no forward pass, no download).
"""

from __future__ import annotations

import argparse

from torch import nn

from .torch_model import VTFusionModel

#: Computed from the architecture ( φ without PCSNet's unused auxiliary heads).
SPEC = {
    "linears": 2_296_320,
    "adaptors": 1_646_080,
    "text_adapter": 820_480,
    "fusion": 33_000,
    "segmenter": 1_900_000,
    "total trainable": 6_650_000,
    "frozen backbone": 208_000_000,
}


def count(module: nn.Module | None, trainable: bool = True) -> int:
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad == trainable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-B-16-plus-240")
    parser.add_argument("--image-size", type=int, default=240)
    args = parser.parse_args()
    model = VTFusionModel(backbone=args.backbone, pretrained="none", image_size=args.image_size)
    ours = {
        "linears": count(model.linears),
        "adaptors": count(model.adaptors),
        "text_adapter": count(model.text_adapter),
        "fusion": count(model.fusion),
        "segmenter": count(model.segmenter),
        "total trainable": count(model),
        "frozen backbone": count(model.backbone, trainable=False),
    }
    print(f"VTFusion on {args.backbone} at {args.image_size} px (random weights)")
    print(f"{'part':<18}{'ours':>14}{'expected':>14}")
    for name, value in ours.items():
        approx = "≈" if name in ("fusion", "segmenter", "total trainable", "frozen backbone") else " "
        print(f"{name:<18}{value:>14,}{approx:>3}{SPEC[name]:>11,}")


if __name__ == "__main__":
    main()
