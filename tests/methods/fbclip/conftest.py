"""Shared tiny fixtures for the FB-CLIP tests (random tiny CLIP, 32 px -> 4 x 4 patches)."""

from __future__ import annotations

import pytest
import torch

from src.backbone import CLIPBackbone


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP oversubscription on a shared 2-core box."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="package")
def tiny_backbone() -> CLIPBackbone:
    torch.manual_seed(0)
    return CLIPBackbone(
        "tiny-vit", "none", image_size=32, pos_embed_mode="bilinear_per_forward", text_causal_mask=False
    )


def exact_auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Rank-based AUROC (Mann-Whitney U, ties counted half)."""
    scores, labels = scores.flatten().double(), labels.flatten().bool()
    pos, neg = scores[labels], scores[~labels]
    greater = (pos.unsqueeze(1) > neg.unsqueeze(0)).double().sum()
    ties = (pos.unsqueeze(1) == neg.unsqueeze(0)).double().sum()
    return float((greater + 0.5 * ties) / (pos.numel() * neg.numel()))
