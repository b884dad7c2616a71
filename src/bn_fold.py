"""Inference copies of frozen convolutional networks: eval BatchNorm folded into its conv, channels-last.

Why: at AFR-CLIP's 518 px its frozen SP CNN (``wide_resnet50_2`` up to layer3, about 100 GFLOPs)
ran at a third of the ViT's FLOP rate on CPU: its 43 BatchNorms were 9% of its time and oneDNN
reorders every NCHW activation. An eval BatchNorm is an affine map, so
``gamma (conv(x) - mu) / sqrt(var + eps) + beta`` equals a conv with weight ``W gamma / sqrt(var + eps)``
and bias ``(b - mu) gamma / sqrt(var + eps) + beta``; results change only by float rounding
(about 1e-7 relative, pinned by the tests).
"""

from __future__ import annotations

import copy
from itertools import chain

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _fold_children(module: nn.Module) -> None:
    """Fold, in place, each (Conv2d, BatchNorm2d) pair: consecutive in a Sequential, or siblings
    named ``convN`` / ``bnN`` (torchvision's ResNet blocks)."""
    children = dict(module.named_children())
    names = list(children)
    pairs = [(a, b) for a, b in zip(names, names[1:]) if isinstance(module, nn.Sequential)]
    pairs += [(n, "bn" + n[4:]) for n in names if n.startswith("conv") and "bn" + n[4:] in children]
    for conv_name, bn_name in pairs:
        conv, bn = children[conv_name], children[bn_name]
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(module, bn_name, nn.Identity())
            children[conv_name], children[bn_name] = None, None  # each layer folds once
    for child in module.children():
        _fold_children(child)


def fold_batchnorms(module: nn.Module) -> nn.Module:
    """An eval-mode deep copy of ``module`` with its BatchNorms folded into their convs, channels-last."""
    folded = copy.deepcopy(module).eval()
    with torch.no_grad():
        _fold_children(folded)
    return folded.to(memory_format=torch.channels_last).requires_grad_(False)


class FoldedCopy:
    """The folded copy of a frozen module, rebuilt whenever one of its tensors changed.

    Kept out of the module tree (a plain attribute), so state dicts, checkpoints and parameter
    counts see only the original. A tensor counts as changed when its storage, version counter
    (in-place writes: ``load_state_dict``, an optimiser step), device or dtype differ.
    """

    def __init__(self) -> None:
        self._key: list[tuple] | None = None
        self._copy: nn.Module | None = None

    @staticmethod
    def _state(module: nn.Module) -> list[tuple]:
        return [(t.data_ptr(), t._version, t.device, t.dtype) for t in chain(module.parameters(), module.buffers())]

    def get(self, module: nn.Module) -> nn.Module:
        """The up-to-date folded copy of ``module``."""
        key = self._state(module)
        if self._copy is None or key != self._key:
            self._copy, self._key = fold_batchnorms(module), key
        return self._copy
