"""PostProcessor against scipy.ndimage (the reference the field uses) and its input checks."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from src.postprocess import PostProcessor, gaussian_kernel1d, max_score


@pytest.mark.parametrize(
    ("border", "scipy_mode"),
    [("scipy_reflect", "reflect"), ("scipy_mirror", "mirror"), ("scipy_nearest", "nearest")],
)
@pytest.mark.parametrize("shape", [(64, 48), (7, 5)])  # (7, 5): radius 16 is larger than the map
def test_gaussian_matches_scipy(border, scipy_mode, shape):
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, *shape)).astype(np.float32) * 10 + rng.normal()
    ours = PostProcessor(sigma=4.0, border=border)(torch.from_numpy(maps)).numpy()
    ref = np.stack([ndimage.gaussian_filter(m, sigma=4, mode=scipy_mode) for m in maps])
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)


def test_default_is_scipy_default_and_differs_from_torch_reflect():
    maps = torch.rand(2, 1, 40, 40)
    ours = PostProcessor()(maps)
    ref = np.stack([ndimage.gaussian_filter(m, sigma=4) for m in maps[:, 0].numpy()])
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5, rtol=0)
    # torch's "reflect" padding (edge not repeated) is scipy's "mirror": a different result at the border.
    torch_reflect = np.stack([ndimage.gaussian_filter(m, sigma=4, mode="mirror") for m in maps[:, 0].numpy()])
    assert np.abs(ours.numpy() - torch_reflect).max() > 1e-4


def test_kernel_radius_and_sum():
    k = gaussian_kernel1d(4.0, 4.0)
    assert k.numel() == 33
    assert torch.isclose(k.sum(), torch.tensor(1.0, dtype=k.dtype))
    assert PostProcessor(sigma=4.0).radius == 16


def test_upsample_then_smooth_matches_interpolate_then_scipy():
    raw = torch.randn(2, 1, 8, 8)
    up = torch.nn.functional.interpolate(raw, size=(50, 50), mode="bilinear", align_corners=False)
    ref = np.stack([ndimage.gaussian_filter(m, sigma=4) for m in up[:, 0].numpy()])
    out = PostProcessor(sigma=4.0)(raw[:, 0], size=(50, 50))
    assert out.shape == (2, 50, 50)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5, rtol=0)


def test_sigma_zero_only_upsamples_and_keeps_raw_values():
    raw = torch.randn(2, 6, 6) * 100  # unbounded scores are never squashed
    out = PostProcessor(sigma=0)(raw)
    torch.testing.assert_close(out, raw)
    out = PostProcessor(sigma=0, upsample="nearest")(raw, size=(12, 12))
    torch.testing.assert_close(out[:, ::2, ::2], raw)


def test_max_score():
    maps = torch.zeros(3, 4, 4)
    maps[1, 2, 3] = 5.0
    maps[2] -= 1.0
    torch.testing.assert_close(max_score(maps), torch.tensor([0.0, 5.0, -1.0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": -1.0}, "sigma"),
        ({"border": "reflect"}, "scipy_reflect"),
        ({"upsample": "area"}, "bilinear"),
        ({"truncate": 0.0}, "truncate"),
    ],
)
def test_bad_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PostProcessor(**kwargs)


def test_bad_shape_is_named():
    with pytest.raises(ValueError, match="anomaly_map"):
        PostProcessor()(torch.zeros(2, 3, 8, 8))


@pytest.mark.parametrize(("mode", "align"), [("bicubic", False), ("bilinear", True), ("nearest", False)])
def test_every_upsample_mode_matches_interpolate(mode, align):
    raw = torch.randn(3, 1, 9, 7, dtype=torch.float64)
    kwargs = {} if mode == "nearest" else {"align_corners": align}
    ref = torch.nn.functional.interpolate(raw, size=(40, 33), mode=mode, **kwargs)[:, 0]
    out = PostProcessor(sigma=0, upsample=mode, align_corners=align)(raw, size=(40, 33))
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)


def test_output_dtype():
    assert PostProcessor()(torch.rand(1, 6, 6, dtype=torch.float16)).dtype == torch.float32
    assert PostProcessor()(torch.rand(1, 6, 6, dtype=torch.float64)).dtype == torch.float64
