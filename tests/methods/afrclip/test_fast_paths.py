"""The optimised AFR-CLIP paths against the straightforward ones they replaced (kept here as references).

MPFA (box sums instead of ``avg_pool2d``), CMFR (split first conv, ``M_v`` half of the last
Linear) and the SP CNN (BatchNorms folded, channels-last) must give the same values to float
rounding; the folded CNN copy must follow its weights when they change. The fast paths run in
inference mode only (evaluation); outside it (training) each component must compute exactly the
straightforward form, so that trained weights and results do not move at all.
"""

import pytest
import torch
import torch.nn.functional as F

from src.methods.afrclip.cmfr import CMFR
from src.methods.afrclip.mpfa import MPFA
from src.methods.afrclip.sp import CNNFeatures


def reference_mpfa(tokens: torch.Tensor, kernel: int, gh: int, gw: int) -> torch.Tensor:
    grid = tokens[:, 1:].transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)
    grid = F.avg_pool2d(grid, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
    return torch.cat([tokens[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)


@pytest.mark.parametrize("kernel,gh,gw", [(3, 5, 7), (5, 6, 4), (7, 3, 3), (3, 1, 4)])
def test_mpfa_equals_avg_pool(kernel, gh, gw):
    x = torch.randn(2, 1 + gh * gw, 6, generator=torch.Generator().manual_seed(kernel), dtype=torch.float64)
    with torch.inference_mode():
        fast = MPFA(kernel, (gh, gw))(x)
    assert torch.allclose(fast, reference_mpfa(x, kernel, gh, gw), rtol=0, atol=1e-12)


def test_training_paths_are_the_straightforward_forms_exactly():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1 + 20, 8, generator=g, requires_grad=True)
    assert torch.equal(MPFA(3, (4, 5))(x), reference_mpfa(x, 3, 4, 5))
    torch.manual_seed(0)
    cmfr = CMFR(8)
    visual, text = F.normalize(x[:, 1:].detach(), dim=-1), F.normalize(torch.randn(2, 8, generator=g), dim=-1)
    m_v, _ = cmfr.weights(visual, text)
    assert torch.equal(cmfr(visual, text), text[:, None] + visual * m_v)
    cnn, images = perturbed_cnn(), torch.randn(1, 3, 64, 64, generator=g)
    assert torch.equal(cnn(images), reference_cnn(cnn, images))


@pytest.mark.parametrize("gate", ["vector", "scalar"])
def test_cmfr_equals_concatenated_form(gate):
    torch.manual_seed(0)
    cmfr = CMFR(16, gate=gate).double()
    g = torch.Generator().manual_seed(3)
    visual = F.normalize(torch.randn(2, 9, 16, generator=g, dtype=torch.float64), dim=-1)
    text = F.normalize(torch.randn(2, 16, generator=g, dtype=torch.float64), dim=-1)
    m_v, _ = cmfr.weights(visual, text)  # the concatenation [F_v ; F_t^s] through the full layers
    with torch.inference_mode():
        fast = cmfr(visual, text)
    assert torch.allclose(fast, text[:, None] + visual * m_v, atol=1e-12)


def perturbed_cnn(seed: int = 0) -> CNNFeatures:
    """resnet18 source with non-trivial BatchNorm statistics (fresh ones are the identity)."""
    torch.manual_seed(seed)
    cnn = CNNFeatures("resnet18", "none")
    with torch.no_grad():
        for bn in (m for m in cnn.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return cnn


def reference_cnn(cnn: CNNFeatures, images: torch.Tensor) -> torch.Tensor:
    x = images * cnn.scale + cnn.shift
    f2 = cnn.backbone["layer2"](cnn.backbone["stem"](x))
    f3 = cnn.backbone["layer3"](f2)
    return torch.cat([f2.mean(dim=(2, 3)), f3.mean(dim=(2, 3))], dim=1)


def test_sp_cnn_folded_equals_unfolded():
    cnn = perturbed_cnn()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        fast = cnn(images)
    ref = reference_cnn(cnn, images)
    assert torch.allclose(fast, ref, rtol=1e-5, atol=1e-6 * ref.abs().max().item())
    assert len(cnn.state_dict()) == len(CNNFeatures("resnet18", "none").state_dict())  # copy not saved


@torch.inference_mode()
def _infer(cnn: CNNFeatures, images: torch.Tensor) -> torch.Tensor:
    return cnn(images)


def test_sp_cnn_folded_copy_follows_new_weights():
    cnn, other = perturbed_cnn(0), perturbed_cnn(1)
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    before = _infer(cnn, images)
    cnn.load_state_dict(other.state_dict())  # e.g. restoring the CNN after checkpoint slimming
    after, expected = _infer(cnn, images), reference_cnn(other, images)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, expected, rtol=1e-5, atol=1e-6 * expected.abs().max().item())
    with torch.no_grad():
        cnn.backbone["layer2"][0].bn1.running_var.mul_(4.0)  # an in-place write to one buffer
    expected = reference_cnn(cnn, images)
    assert torch.allclose(_infer(cnn, images), expected, rtol=1e-5, atol=1e-6 * expected.abs().max().item())
