"""Resize kernels, mask rules, normalisation round trip, augmentation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from datamodules.transforms import CLIP_MEAN, CLIP_STD, Preprocessor, denormalize


def _line_and_disk() -> np.ndarray:
    """A 1-px line on row 1 plus a disk; shrinking 40 -> 16 treats both differently per rule."""
    mask = np.zeros((40, 40), np.uint8)
    mask[1, :] = 1
    cv2.circle(mask, (25, 22), 9, 1, -1)
    return mask.astype(np.float32)


def test_mask_rules_follow_their_reference_and_differ():
    image = np.zeros((40, 40, 3), np.uint8)
    mask = _line_and_disk()
    _, nearest = Preprocessor(16, mask_interpolation="nearest").resize(image, mask)
    _, opencv = Preprocessor(16, mask_interpolation="opencv_bilinear_threshold").resize(image, mask)
    _, pil = Preprocessor(16, mask_interpolation="bilinear_threshold").resize(image, mask)
    for out in (nearest, opencv, pil):
        assert out.shape == (16, 16) and out.dtype == np.float32 and set(np.unique(out)) == {0.0, 1.0}
    assert np.array_equal(nearest, cv2.resize(mask, (16, 16), interpolation=cv2.INTER_NEAREST))
    reference = (cv2.resize(mask, (16, 16), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.float32)
    assert np.array_equal(opencv, reference)
    # row 1 is never sampled by nearest (rows 0, 2, 5, ...) but has weight 0.75 at y = 0.75 in
    # OpenCV's 2-tap bilinear; PIL's antialiased bilinear spreads it over 5 rows (below 0.5)
    assert nearest[0].sum() == 0 and opencv[0].sum() == 16 and pil[0].sum() == 0


def _mvtec_like_masks(side: int, count: int) -> list[np.ndarray]:
    """0/1 masks with the shapes MVTec AD annotates: blobs, polygons, thin scratches, small dots."""
    rng = np.random.default_rng(4)
    masks = []
    for _ in range(count):
        m = np.zeros((side, side), np.uint8)
        for _ in range(rng.integers(1, 4)):
            c = tuple(int(v) for v in rng.integers(side // 8, side - side // 8, 2))
            axes = tuple(int(v) for v in rng.integers(3, side // 6, 2))
            cv2.ellipse(m, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        pts = rng.integers(0, side, (int(rng.integers(3, 7)), 2)).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
        for _ in range(rng.integers(1, 4)):  # scratches 1-4 px wide
            a, b = (tuple(int(v) for v in rng.integers(0, side, 2)) for _ in range(2))
            cv2.line(m, a, b, 1, int(rng.integers(1, 5)))
        for _ in range(rng.integers(0, 4)):
            cv2.circle(m, tuple(int(v) for v in rng.integers(0, side, 2)), int(rng.integers(1, 4)), 1, -1)
        masks.append(m.astype(np.float32))
    return masks


@pytest.mark.parametrize(("side", "size"), [(1024, 518), (700, 518), (300, 518)])
def test_bilinear_threshold_is_the_released_torchvision_pil_rule(side, size):
    """The released loader: 0/255 ``L`` image -> torchvision Resize (PIL bilinear) -> ToTensor -> > 0.5."""
    from PIL import Image
    from torchvision import transforms

    released = transforms.Compose([transforms.Resize((size, size)), transforms.CenterCrop(size), transforms.ToTensor()])
    image = np.zeros((side, side, 3), np.uint8)
    ours = Preprocessor(size, mask_interpolation="bilinear_threshold")
    opencv = Preprocessor(size, mask_interpolation="opencv_bilinear_threshold")
    changed = 0
    for mask in _mvtec_like_masks(side, 4):
        pil = Image.fromarray((mask * 255).astype(np.uint8), mode="L")
        want = (released(pil)[0].numpy() > 0.5).astype(np.float32)
        got = ours.resize(image, mask)[1]
        assert np.array_equal(got, want)
        changed += int((opencv.resize(image, mask)[1] != want).sum())
    if side > size:  # shrinking: OpenCV's rule differs on some boundary / scratch pixels
        assert changed > 0


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear", "area", "nearest", "lanczos", "pil_bicubic"])
def test_image_kernels(kernel):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    out, _ = Preprocessor(20, image_interpolation=kernel).resize(image, np.zeros((50, 70), np.float32))
    assert out.shape == (20, 20, 3) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_pil_and_opencv_bicubic_differ():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    mask = np.zeros((128, 128), np.float32)
    cv_out, _ = Preprocessor(37, image_interpolation="bicubic").resize(image, mask)
    pil_out, _ = Preprocessor(37, image_interpolation="pil_bicubic").resize(image, mask)
    assert np.abs(cv_out - pil_out).mean() > 0.01  # antialiasing vs none on 3.5x downsampling


def test_normalise_and_denormalise_round_trip():
    image = np.random.default_rng(2).random((8, 8, 3)).astype(np.float32)
    tensor = Preprocessor(8).to_tensor(image)
    assert tensor.shape == (3, 8, 8) and tensor.dtype == torch.float32
    expected = (image[2, 3] - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert torch.allclose(tensor[:, 2, 3], torch.tensor(expected, dtype=torch.float32), atol=1e-5)
    assert torch.allclose(denormalize(tensor), torch.from_numpy(image.transpose(2, 0, 1)), atol=1e-5)
    assert denormalize(tensor[None]).shape == (1, 3, 8, 8)


def test_augment_keeps_mask_aligned_and_is_seeded():
    image = np.zeros((32, 32, 3), np.float32)
    image[4:10, 20:28] = 1.0
    mask = np.zeros((32, 32), np.float32)
    mask[4:10, 20:28] = 1.0
    outs = []
    for _ in range(2):
        pre = Preprocessor(32, seed=3)
        outs.append([pre.augment(image, mask) for _ in range(6)])
    for (img_a, mask_a), (img_b, mask_b) in zip(*outs):
        assert np.array_equal(img_a, img_b) and np.array_equal(mask_a, mask_b)
        bright = img_a.mean(axis=2) > 0.5
        assert (bright == (mask_a > 0)).mean() > 0.97  # geometry applied to both
    assert any(not np.array_equal(m, mask) for _, m in outs[0])


def test_bad_options():
    with pytest.raises(ValueError, match="image_interpolation 'cubic' is not one of"):
        Preprocessor(8, image_interpolation="cubic")
    with pytest.raises(ValueError, match="mask_interpolation 'bilinear' is not one of"):
        Preprocessor(8, mask_interpolation="bilinear")
    with pytest.raises(ValueError, match="image_size"):
        Preprocessor(0)
