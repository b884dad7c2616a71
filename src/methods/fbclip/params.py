"""Print FB-CLIP's trainable-parameter counts at the paper's size and compare with the spec.

``python -m src.methods.fbclip.params`` builds ViT-L-14-336 (random weights, no forward) at 518 px
in the released configuration and prints the count of every trained block next to the numbers of
the released model's parameter count (effectively trained: 6,223,114).
"""

from __future__ import annotations

import argparse

from .lightning_model import FBCLIP

#: Computed from the released architecture: the effectively-trained parameters of the release.
SPEC = {
    "prompt (ctx_pos + ctx_neg)": 18_432,
    "fb_attention": 4_727_811,
    "text_fusion.selector (token_selector)": 295_681,
    "text_fusion.mlp (text_projection_mlp)": 1_181_184,
    "layer_weights (scale_weights)": 6,
}
SPEC_TOTAL = 6_223_114
#: CLIP total in the spec, minus ``logit_scale`` (1), which FB-CLIP never uses and the backbone does not keep.
SPEC_FROZEN_CLIP = 427_944_193 - 1


def count(module, prefix: str) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if n.startswith(prefix) and p.requires_grad)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="ViT-L-14-336-quickgelu")
    parser.add_argument("--image-size", type=int, default=518)
    args = parser.parse_args(argv)
    module = FBCLIP(backbone=args.backbone, pretrained="none", image_size=args.image_size)
    model = module.model
    ours = {
        "prompt (ctx_pos + ctx_neg)": count(model, "prompt."),
        "fb_attention": count(model, "fb_attention."),
        "text_fusion.selector (token_selector)": count(model, "text_fusion.selector."),
        "text_fusion.mlp (text_projection_mlp)": count(model, "text_fusion.mlp."),
        "layer_weights (scale_weights)": count(model, "layer_weights"),
    }
    frozen = sum(p.numel() for p in model.backbone.parameters())
    print(f"{'block':42s} {'ours':>12s} {'spec':>12s}")
    for name, value in ours.items():
        print(f"{name:42s} {value:12,d} {SPEC[name]:12,d}{'' if value == SPEC[name] else '  MISMATCH'}")
    total = module.trainable_parameter_count()
    print(f"{'trainable total':42s} {total:12,d} {SPEC_TOTAL:12,d}{'' if total == SPEC_TOTAL else '  MISMATCH'}")
    print(f"{'frozen CLIP (without logit_scale)':42s} {frozen:12,d} {SPEC_FROZEN_CLIP:12,d}"
          f"{'' if frozen == SPEC_FROZEN_CLIP else '  MISMATCH'}")
    print("(not built here: the release's dead parameters, 11,759,903 handed to its Adam)")
    return 0 if total == SPEC_TOTAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
