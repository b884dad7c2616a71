"""Print AFR-CLIP's trainable parameter counts at the paper's size and compare them with the spec.

    python -m src.methods.afrclip.params [--backbone ViT-L-14-336-quickgelu] [--image-size 518]

Builds the model on random weights (``pretrained=none``, ``sp_cnn_pretrained=none``): parameter
counts do not depend on the weights, and no forward pass is run.
"""

from __future__ import annotations

import argparse
import warnings

from .torch_model import AFRCLIPModel

#: Computed from the architecture: handed to the optimiser / effectively trained
#: (the M_t half of CMFR's last Linear is dead).
SPEC_TOTAL = 16_336_384
SPEC_EFFECTIVE = 15_155_968


def count(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def breakdown(model: AFRCLIPModel) -> dict[str, int]:
    """Trainable parameters per component, plus ``total`` and ``effective`` (without dead M_t)."""
    parts = {
        "stage_adapters": count(model.stage_adapters),
        "text_adapter": count(model.text_adapter),
        "cmfr": count(model.cmfr) if model.cmfr is not None else 0,
        "sp_linears": count(model.sp.pv) if model.sp is not None and model.sp.pv is not None else 0,
        "sp_pl": model.sp.pl.numel() if model.sp is not None and model.sp.pl is not None else 0,
    }
    parts["total"] = count(model)
    # Eq. 6 uses M_v only: the M_t half (rows) of each CMFR's last Linear never gets a gradient.
    dead = 0
    for cmfr in model.cmfr or []:
        rows = cmfr.linear.out_features // 2
        dead += rows * cmfr.linear.in_features + rows
    parts["dead_mt"] = dead
    parts["effective"] = parts["total"] - dead
    parts["frozen"] = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return parts


def main(argv: list[str] | None = None) -> dict[str, int]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="ViT-L-14-336-quickgelu")
    parser.add_argument("--image-size", type=int, default=518)
    parser.add_argument("--layers", type=int, nargs="+", default=[6, 12, 18, 24])
    parser.add_argument("--sp-source", default="wide_resnet50_2")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AFRCLIPModel(args.backbone, "none", image_size=args.image_size, layers=args.layers,
                             sp_source=args.sp_source, sp_cnn_pretrained="none")
    parts = breakdown(model)
    print(f"AFR-CLIP trainable parameters ({args.backbone}, {args.image_size}px, sp_source={args.sp_source}):")
    for name, value in parts.items():
        print(f"  {name:<15} {value:>13,}")
    paper = args.backbone == "ViT-L-14-336-quickgelu" and args.sp_source == "wide_resnet50_2"
    if paper:
        for label, ours, spec in (("total", parts["total"], SPEC_TOTAL),
                                  ("effective", parts["effective"], SPEC_EFFECTIVE)):
            verdict = "matches" if ours == spec else f"DIFFERS by {ours - spec:+,}"
            print(f"  spec 1.7 {label}: {spec:,} -> {verdict}")
    return parts


if __name__ == "__main__":
    main()
