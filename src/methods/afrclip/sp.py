"""SP: self prompting (AFR-CLIP Eqs. 15-18, README A3-A5).

An image-specific visual prompt ``P~_v = P_v + P_l`` of K tokens enters the first stage of the
frozen ViT:

* ``P_v = stack_k Linear_k(F_src)``: K independent linears on a frozen global feature of the image
  (default ``wide_resnet50_2``: global-average-pooled layer2 and layer3, 1536-d);
* ``P_l``: K learnable tokens, N(0, 0.02) as AdaCLIP's static prompts.

Insertion (``sp_insert``):

* ``append`` (default, a declared DEVIATION): block 1 runs unmodified; the prompts are appended
  before the first prompted block (block 2), written over the last K tokens again before every
  later prompted block, carried unchanged through the remaining blocks and stripped from every tap
  (AdaCLIP's mechanism shifted by one block). No patch token is ever overwritten.
* ``overwrite`` (Eq. 18 literally): before every prompted block the last K tokens are replaced, so
  before block 2 these are the last K real patch tokens (bottom-right of the grid), whose cells
  then carry prompt outputs in every tap.

Stage ``j`` covers the blocks after tap ``j - 1`` up to tap ``j`` (6j-5..6j for ViT-L with taps
6/12/18/24); block 1 is never prompted.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from src.backbone.clip import BlockHook
from src.backbone.rehearsal import rehearsal_active
from src.bn_fold import FoldedCopy
from src.seeding import module_seed

SOURCES = ("wide_resnet50_2", "resnet18", "clip_global")
INSERT_MODES = ("append", "overwrite")

#: torchvision builder, weights enum and (layer2, layer3) widths of each CNN source.
_CNNS = {
    "wide_resnet50_2": ("wide_resnet50_2", "Wide_ResNet50_2_Weights", (512, 1024)),
    "resnet18": ("resnet18", "ResNet18_Weights", (128, 256)),
}

# CLIP's normalisation (what the batch carries) and ImageNet's (what the CNN was trained on).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CNNWeightsUnavailableError(RuntimeError):
    """The requested CNN weights are not on this machine."""


def cnn_feature_dim(source: str) -> int | None:
    """Width of ``F_src`` for a CNN source; None for ``clip_global`` (the CLIP joint width)."""
    if source not in SOURCES:
        raise ValueError(f"sp_source must be one of {SOURCES}, got {source!r}")
    return sum(_CNNS[source][2]) if source in _CNNS else None


def _cached_imagenet_files(arch: str) -> list[Path]:
    """Where torchvision would have cached the ImageNet weights of ``arch`` (DEFAULT first)."""
    import torchvision.models as tvm

    enum = getattr(tvm, _CNNS[arch][1])
    members = [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / os.path.basename(w.url) for w in members]


def resolve_cnn_weights(arch: str, pretrained: str) -> str | None:
    """Local weights file for the SP CNN, or None for random init. Never downloads.

    Args:
        arch: ``wide_resnet50_2`` or ``resnet18``.
        pretrained: ``imagenet`` (torchvision's weights, looked up only in the local torch hub
            cache), a path to a state dict, ``none`` (random init) or ``auto`` (cached ImageNet
            weights when present, else random init with a loud warning).
    """
    choice = pretrained.strip()
    if choice.lower() == "none":
        return None
    if rehearsal_active():  # make rehearse: the CNN keeps its architecture, random weights (labelled)
        print(f"REHEARSAL: SP CNN {arch} on random weights instead of {pretrained!r}", file=sys.stderr)
        return None
    if choice.lower() in {"imagenet", "auto"}:
        hits = [p for p in _cached_imagenet_files(arch) if p.is_file()]
        if hits:
            return str(hits[0])
        if choice.lower() == "auto":
            bar = "!" * 78
            warnings.warn(
                f"\n{bar}\nRANDOM-INIT SP CNN: {arch} runs on random weights (no ImageNet weights in "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'}). The run is labelled "
                f"sp_cnn_random_init and its metrics mean nothing about the method.\n{bar}",
                stacklevel=3,
            )
            return None
        raise CNNWeightsUnavailableError(
            f"sp_cnn_pretrained='imagenet': no cached torchvision weights for {arch} (looked for "
            f"{[str(p) for p in _cached_imagenet_files(arch)]}); this suite never downloads. Copy the "
            f"file there, pass a path (--model.init_args.sp_cnn_pretrained=/path/to/{arch}.pth), use "
            "sp_source=clip_global (no extra weights), or 'none'/'auto' for labelled random-init runs."
        )
    if not Path(choice).is_file():
        raise CNNWeightsUnavailableError(
            f"sp_cnn_pretrained={pretrained!r} is not a file; valid: 'imagenet', 'auto', 'none' or a path "
            f"to a torchvision {arch} state dict."
        )
    return choice


class CNNFeatures(nn.Module):
    """Frozen torchvision CNN giving ``F_src = [GAP(layer2); GAP(layer3)]`` (README A4).

    The attribute holding the network is named ``backbone`` so that the suite's checkpoint slimming
    drops its parameters and buffers like the CLIP backbone's.

    Args:
        arch: ``wide_resnet50_2`` (1536-d) or ``resnet18`` (384-d).
        pretrained: see :func:`resolve_cnn_weights`.
    """

    def __init__(self, arch: str = "wide_resnet50_2", pretrained: str = "auto") -> None:
        super().__init__()
        if arch not in _CNNS:
            raise ValueError(f"CNN source must be one of {tuple(_CNNS)}, got {arch!r}")
        import torchvision.models as tvm

        net = getattr(tvm, _CNNS[arch][0])(weights=None)
        path = resolve_cnn_weights(arch, pretrained)
        if path is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        # Only the stem and layers 1-3 are used; layer4 and the classifier would be dead weight.
        stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.backbone = nn.ModuleDict({"stem": stem, "layer2": net.layer2, "layer3": net.layer3})
        self.arch = arch
        self.pretrained = pretrained
        self.weights_path = path
        self.random_init = path is None
        self.out_dim = sum(_CNNS[arch][2])
        # Converts CLIP-normalised input to ImageNet-normalised: x * scale + shift, per channel.
        clip_mean, clip_std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
        net_mean, net_std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("scale", (clip_std / net_std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((clip_mean - net_mean) / net_std).view(1, 3, 1, 1), persistent=False)
        for param in self.parameters():
            param.requires_grad_(False)
        self.eval()
        self._folded = FoldedCopy()  # what forward runs: BatchNorms folded, channels-last

    def train(self, mode: bool = True) -> CNNFeatures:
        """Frozen: batch norm keeps its running statistics whatever the parent module does."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) CLIP-normalised images -> (B, out_dim) pooled layer2 + layer3 features."""
        if not torch.is_inference_mode_enabled():
            # Training feeds P_v from the plain layers: the folded copy rounds differently, and
            # that would compound over training steps into trained results moved by ~1e-6.
            return self.pooled(self.backbone, images * self.scale + self.shift)
        x = torch.addcmul(self.shift, images, self.scale).contiguous(memory_format=torch.channels_last)
        return self.pooled(self._folded.get(self.backbone), x)

    def pooled(self, net: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
        """``F_src`` of ImageNet-normalised ``x`` through ``net`` (the layers or their folded copy)."""
        f2 = net["layer2"](net["stem"](x))
        f3 = net["layer3"](f2)
        return torch.cat([f2.mean(dim=(2, 3)), f3.mean(dim=(2, 3))], dim=1)


def prompt_plan(layers: Sequence[int], stages: Sequence[int], insert: str, num_blocks: int,
                drop_after_last_stage: bool = False) -> dict[int, str]:
    """What happens before each block: ``append``, ``replace`` or ``drop`` (1-based block -> action).

    Args:
        layers: tapped blocks; stage ``j`` covers blocks ``layers[j-2] + 1 .. layers[j-1]``.
        stages: 1-based stages to prompt.
        insert: ``append`` or ``overwrite``.
        num_blocks: blocks of the ViT (a ``drop`` is only planned before an existing block).
        drop_after_last_stage: in ``append`` mode, remove the prompts after the last prompted
            block instead of carrying them on (README A5's switch).
    """
    if insert not in INSERT_MODES:
        raise ValueError(f"sp_insert must be one of {INSERT_MODES}, got {insert!r}")
    bad = [s for s in stages if not 1 <= int(s) <= len(layers)]
    if not stages or bad:
        raise ValueError(
            f"sp_stages {list(stages)} invalid: stages are 1..{len(layers)} (one per tapped layer "
            f"{list(layers)}); the paper prompts stage 1 (Table 4: [1], [1,2], [1,2,3], [1,2,3,4])."
        )
    bounds = [0, *layers]
    blocks = sorted({b for s in stages for b in range(bounds[s - 1] + 1, bounds[s] + 1) if b >= 2})
    if not blocks:
        raise ValueError(
            f"sp_stages {list(stages)} cover only block 1, which SP never prompts (the paper leaves "
            f"layer 1 unmodified); tap a later block (layers={list(layers)}) or prompt more stages."
        )
    plan = {}
    for n, block in enumerate(blocks):
        plan[block] = "append" if insert == "append" and n == 0 else "replace"
    if insert == "append" and drop_after_last_stage and blocks[-1] < num_blocks:
        plan[blocks[-1] + 1] = "drop"
    return plan


class SelfPrompting(nn.Module):
    """Builds ``P~_v`` and the block hook that inserts it.

    Args:
        width: ViT width C (prompt token width).
        num_prompts: K (5 in the paper).
        source_dim: width of the source feature F_src (CNN or CLIP global).
        use_pv: include the image-conditioned prompts ``P_v`` (K linears).
        use_pl: include the learnable prompts ``P_l``.
    """

    def __init__(self, width: int, num_prompts: int = 5, source_dim: int = 1536,
                 use_pv: bool = True, use_pl: bool = True) -> None:
        super().__init__()
        if num_prompts < 1:
            raise ValueError(f"sp_num_prompts must be >= 1, got {num_prompts}")
        if not (use_pv or use_pl):
            raise ValueError("SelfPrompting needs P_v or P_l; with neither, SP is off (use_sp=false).")
        self.width = width
        self.num_prompts = num_prompts
        # Own seeds: the PV/PL rows of the SP ablation share the start of the part they keep.
        with module_seed("afr.sp.pv"):
            self.pv = nn.ModuleList(nn.Linear(source_dim, width) for _ in range(num_prompts)) if use_pv else None
        with module_seed("afr.sp.pl"):
            self.pl = nn.Parameter(torch.randn(num_prompts, width) * 0.02) if use_pl else None

    def forward(self, source: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """Prompt tokens ``P~_v = P_v + P_l``.

        Args:
            source: (B, source_dim) frozen image feature; ignored (may be None) without ``P_v``.
            batch_size: B.

        Returns:
            (B, K, C) prompt tokens.
        """
        prompts = None
        if self.pv is not None:
            if source is None:
                raise ValueError("SelfPrompting with P_v needs the source feature of each image")
            prompts = torch.stack([linear(source) for linear in self.pv], dim=1)
        if self.pl is not None:
            static = self.pl.unsqueeze(0).expand(batch_size, -1, -1)
            prompts = static if prompts is None else prompts + static
        return prompts

    @staticmethod
    def hook(prompts: torch.Tensor, plan: dict[int, str]) -> BlockHook:
        """A ``before_block`` hook for :meth:`CLIPBackbone.forward_blocks` applying ``plan``.

        Args:
            prompts: (B, K, C) tokens from :meth:`forward`.
            plan: from :func:`prompt_plan`.
        """
        k = prompts.shape[1]

        def before_block(i: int, x: torch.Tensor) -> torch.Tensor:
            action = plan.get(i)
            if action == "append":
                return torch.cat([x, prompts.to(x.dtype)], dim=1)
            if action == "replace":
                return torch.cat([x[:, :-k], prompts.to(x.dtype)], dim=1)
            if action == "drop":
                return x[:, :-k]
            return x

        return before_block
