"""Albumentations 2.0 pipelines: resize, optional train augmentation, CLIP normalisation.

The three steps are separate because the sample hook (train-time synthesis) runs between them:
``resize`` (uint8 file -> float32 [0, 1] at S x S) -> ``augment`` (train only) -> hook ->
``to_tensor`` (CLIP mean/std, (3, S, S)).

Resize kernels (``image_interpolation``): ``bicubic`` = OpenCV ``INTER_CUBIC`` (default, what
albumentations/anomalib use), ``bilinear``, ``area``, ``nearest``, ``lanczos``, and
``pil_bicubic`` = PIL's antialiased bicubic, i.e. what CLIP/AnomalyCLIP/FB-CLIP's torchvision
pipelines do. The two bicubics differ noticeably on large downsampling (1024 -> 518), and CLIP is
sensitive to it: use ``pil_bicubic`` for parity with published numbers.

Mask rules (``mask_interpolation``): ``nearest`` (default; VTFusion, baselines);
``bilinear_threshold``: the released AnomalyCLIP / FB-CLIP rule, i.e. PIL's bilinear resize of
the 0/255 mask image (antialiased: when shrinking, its triangle filter widens with the scale),
then ``/ 255 > 0.5``; ``opencv_bilinear_threshold``: OpenCV's ``INTER_LINEAR`` of the 0/1 mask
then ``> 0.5`` (what ``bilinear_threshold`` computed before; OpenCV samples only the 2 x 2 nearest
pixels, so thin structures survive or vanish differently: on MVTec-sized masks shrunk to 518,
a few tenths of a percent of the anomalous pixels differ).

Public API: ``CLIP_MEAN``, ``CLIP_STD``, ``IMAGE_INTERPOLATIONS``, ``MASK_INTERPOLATIONS``,
``Preprocessor``, ``denormalize``, ``pil_bilinear_threshold``.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

IMAGE_INTERPOLATIONS = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
    "lanczos": cv2.INTER_LANCZOS4,
    "pil_bicubic": None,  # handled by PilBicubicResize
}
#: OpenCV flag of each mask rule; ``None`` = PIL's bilinear (see :func:`pil_bilinear_threshold`).
MASK_INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear_threshold": None,
    "opencv_bilinear_threshold": cv2.INTER_LINEAR,
}


def pil_bilinear_threshold(mask: np.ndarray, size: int) -> np.ndarray:
    """The released FB-CLIP / AnomalyCLIP mask rule. (H, W) {0, 1} -> float32 (S, S) {0, 1}.

    Their loader makes a 0/255 ``L`` image, torchvision's ``Resize`` calls PIL's bilinear resize
    (uint8 result), ``ToTensor`` divides by 255 and the mask is thresholded at 0.5.
    """
    image = Image.fromarray(np.where(mask > 0.5, 255, 0).astype(np.uint8), mode="L")
    resized = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return (resized / 255.0 > 0.5).astype(np.float32)


class PilBicubicResize(A.DualTransform):
    """Resize the image with PIL's antialiased bicubic (torchvision/CLIP parity); masks with OpenCV."""

    def __init__(self, height: int, width: int, mask_interpolation: int = cv2.INTER_NEAREST, p: float = 1.0):
        super().__init__(p=p)
        self.height = height
        self.width = width
        self.mask_interpolation = mask_interpolation

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        """Resize an (H, W, 3) uint8 image with PIL's antialiased bicubic."""
        return np.asarray(Image.fromarray(img).resize((self.width, self.height), Image.Resampling.BICUBIC))

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        """Resize a mask with the configured OpenCV interpolation."""
        return cv2.resize(mask, (self.width, self.height), interpolation=self.mask_interpolation)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        """Constructor argument names, for albumentations' serialisation."""
        return ("height", "width", "mask_interpolation")


class Preprocessor:
    """Image/mask preprocessing for one image size.

    Args:
        image_size: output side S (square, aspect ratio not kept, as the field does).
        image_interpolation: a key of ``IMAGE_INTERPOLATIONS``.
        mask_interpolation: a key of ``MASK_INTERPOLATIONS``.
        seed: seed of the augmentation stream (reseeded per DataLoader worker, see
            :meth:`reseed`).
    """

    def __init__(
        self,
        image_size: int = 224,
        image_interpolation: str = "bicubic",
        mask_interpolation: str = "nearest",
        seed: int = 0,
    ) -> None:
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
        if image_interpolation not in IMAGE_INTERPOLATIONS:
            raise ValueError(
                f"image_interpolation '{image_interpolation}' is not one of {sorted(IMAGE_INTERPOLATIONS)}"
            )
        if mask_interpolation not in MASK_INTERPOLATIONS:
            raise ValueError(f"mask_interpolation '{mask_interpolation}' is not one of {sorted(MASK_INTERPOLATIONS)}")
        self.image_size = image_size
        self.mask_interpolation = mask_interpolation
        # The PIL rule resizes the mask outside albumentations; its flag there is then unused.
        mask_flag = MASK_INTERPOLATIONS[mask_interpolation]
        self._pil_mask = mask_flag is None
        mask_flag = cv2.INTER_NEAREST if mask_flag is None else mask_flag
        if image_interpolation == "pil_bicubic":
            resize: A.DualTransform = PilBicubicResize(image_size, image_size, mask_interpolation=mask_flag)
        else:
            resize = A.Resize(
                image_size,
                image_size,
                interpolation=IMAGE_INTERPOLATIONS[image_interpolation],
                mask_interpolation=mask_flag,
            )
        self._resize = A.Compose([resize])
        # Small, label-preserving changes only: a large rotation or crop could move a defect out
        # of the frame and leave a wrong "anomalous" label.
        self._augment = A.Compose(
            [
                A.HorizontalFlip(p=0.5),
                A.VerticalFlip(p=0.5),
                A.Rotate(limit=10, border_mode=cv2.BORDER_REFLECT_101, p=0.5),
                A.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.02, p=0.5),
            ],
            seed=seed,
        )
        self._normalize = A.Normalize(mean=CLIP_MEAN, std=CLIP_STD, max_pixel_value=1.0)

    def resize(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (H, W, 3) + float32 {0, 1} (H, W) -> float32 (S, S, 3) in [0, 1] + float32 (S, S) {0, 1}.

        The image is resized as uint8 (rounded and clipped like PIL/torchvision) before scaling.
        """
        if self._pil_mask:
            out = self._resize(image=image)
            resized_mask = pil_bilinear_threshold(mask, self.image_size)
        else:
            out = self._resize(image=image, mask=mask.astype(np.float32))
            resized_mask = (out["mask"] > 0.5).astype(np.float32)
        return out["image"].astype(np.float32) / 255.0, resized_mask

    def augment(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Random flips, small rotation, colour jitter on float32 [0, 1] images; mask follows geometry."""
        out = self._augment(image=image, mask=mask)
        return np.clip(out["image"], 0.0, 1.0).astype(np.float32), (out["mask"] > 0.5).astype(np.float32)

    def reseed(self, seed: int) -> None:
        """Reseed the augmentation stream (called per DataLoader worker, see ``worker_init_fn``)."""
        self._augment.set_random_seed(seed)

    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """float32 (S, S, 3) RGB in [0, 1] -> CLIP-normalised float32 tensor (3, S, S)."""
        normalized = self._normalize(image=image.astype(np.float32))["image"]
        return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo CLIP normalisation for figures: (..., 3, H, W) -> same shape, clamped to [0, 1]."""
    mean = torch.tensor(CLIP_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0.0, 1.0)
