"""AFR-CLIP's optimiser, schedule and initial values, pinned by value.

The paper: Adam, initial lr 0.001 decayed as lr = 0.001 / (epoch + 1). Not stated (README
resolution): PyTorch's Adam defaults (betas 0.9/0.999, eps 1e-8, no weight decay), one parameter
group holding every trainable part, and P_l drawn from N(0, 0.02) as AdaCLIP's static prompts.
"""

from __future__ import annotations

import pytest
import torch

from src.methods.afrclip.sp import SelfPrompting
from src.seeding import derived_seed

from .conftest import build_valued
from .test_forward_values import CONFIGS

# Tiny value model: ViT width C, joint width D, S stages, K prompts, resnet18 source width F.
C, D, S, K, F_SRC = 64, 32, 3, 5, 128 + 256


def expected_trainables() -> dict[str, int]:
    """Trainable parts and their sizes, from the layer shapes (not from the model)."""
    return {
        "stage adapters": S * (C * D + D),
        "text adapter": D * D + D,
        "cmfr": (2 * D * D + D) + (D * 2 * D + 2 * D) + (2 * D * 2 * D + 2 * D),
        "sp linears": K * (F_SRC * C + C),
        "P_l": K * C,
    }


@pytest.fixture(scope="module")
def model(cnn_file):
    return build_valued(CONFIGS["three-stages"], cnn_file)


def test_one_adam_group_with_the_paper_lr_and_default_betas(model):
    conf = model.configure_optimizers()
    opt = conf["optimizer"]
    assert type(opt) is torch.optim.Adam
    assert len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert group["lr"] == 1e-3 and group["initial_lr"] == 1e-3
    assert tuple(group["betas"]) == (0.9, 0.999)
    assert group["weight_decay"] == 0 and group["eps"] == 1e-8
    assert not group["amsgrad"] and not group["maximize"]


def test_the_group_holds_exactly_the_trainable_parts(model):
    group = model.configure_optimizers()["optimizer"].param_groups[0]["params"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in group} == {id(p) for p in trainable} and len(group) == len(trainable)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.split(".")[1] in {"stage_adapters", "text_adapter", "cmfr", "sp"} for n in names), names
    assert sum(p.numel() for p in group) == sum(expected_trainables().values())
    assert not any("backbone" in n for n in names)


def test_lr_is_divided_by_epoch_plus_one_once_per_epoch(model):
    conf = model.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert sched["interval"] == "epoch" and sched.get("frequency", 1) == 1
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched["scheduler"].step()
    assert seen == pytest.approx([1e-3 / (e + 1) for e in range(5)], rel=1e-12)


def test_explicit_betas_and_no_decay(cnn_file):
    other = build_valued(CONFIGS["three-stages"], cnn_file, betas=[0.5, 0.999], lr=2e-4, lr_decay="none")
    conf = other.configure_optimizers()
    assert set(conf) == {"optimizer"}
    group = conf["optimizer"].param_groups[0]
    assert tuple(group["betas"]) == (0.5, 0.999) and group["lr"] == 2e-4


def test_learnable_prompts_start_as_n_0_002():
    """P_l = 0.02 * N(0, 1) exactly, drawn from its own generator seeded by (run seed, "afr.sp.pl")."""
    torch.manual_seed(11)
    sp = SelfPrompting(width=C, num_prompts=K, source_dim=8, use_pv=False)
    own = torch.Generator().manual_seed(derived_seed("afr.sp.pl", base=11))
    assert torch.equal(sp.pl.detach(), torch.randn(K, C, generator=own) * 0.02)
    torch.manual_seed(12)
    wide = SelfPrompting(width=1024, num_prompts=K, source_dim=8).pl.detach()
    assert wide.std().item() == pytest.approx(0.02, rel=0.05)
    assert abs(wide.mean().item()) < 0.002


def test_learnable_prompts_in_the_model_have_the_same_scale(model):
    pl = model.model.sp.pl.detach()
    assert pl.shape == (K, C)
    assert pl.std().item() == pytest.approx(0.02, rel=0.2)


def test_adapters_use_pytorch_default_init(model):
    """Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (APRIL-GAN keeps it)."""
    for lin in [*model.model.stage_adapters.linears, model.model.text_adapter]:
        bound = lin.in_features ** -0.5
        assert lin.weight.abs().max() <= bound
        assert lin.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.1)
