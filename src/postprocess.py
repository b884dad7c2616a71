"""Shared anomaly-map post-processing: upsample to the evaluation size, then Gaussian smoothing.

Every method's raw patch-level map goes through the same :class:`PostProcessor` so that methods
are compared on equal terms. The defaults reproduce what AnomalyCLIP and FB-CLIP do with
``scipy.ndimage.gaussian_filter(map, sigma=4)`` (truncate 4 -> radius 16, kernel 33): scipy's
``"reflect"`` border repeats the edge sample (``d c b a | a b c d | d c b a``), which is *symmetric*
padding, not torch's ``"reflect"`` (``d c b | a b c d | c b a``).

Upsampling and the bordered Gaussian are both linear and separable, so each axis is one matrix
``A = G @ U`` (U: interpolation, G: padding + Gaussian), built once per size in float64, and a batch
is processed as ``A_H @ map @ A_W^T``: two batched matmuls, on the map's device. This computes the
same thing as ``F.interpolate`` followed by ``scipy.ndimage.gaussian_filter`` (tested to 1e-5), and
is several times faster than a 33-tap ``conv2d`` on CPU, even at full resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Border modes, named after the scipy.ndimage mode they reproduce.
BORDERS = ("scipy_reflect", "scipy_mirror", "scipy_nearest")
UPSAMPLE_MODES = ("bilinear", "bicubic", "nearest")


def gaussian_kernel1d(
    sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Normalised 1-D Gaussian of radius ``int(truncate * sigma + 0.5)`` as scipy builds it. (2r+1,)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    phi = torch.exp(-0.5 * (x / sigma) ** 2)
    return (phi / phi.sum()).to(dtype)


def border_index(n: int, radius: int, border: str, device: torch.device | None = None) -> torch.Tensor:
    """Source indices of a length-``n`` axis padded by ``radius`` on both sides. Shape (n + 2 radius,).

    Built by index arithmetic rather than ``F.pad`` so that any radius works, also radii larger than
    the axis (a 7x7 map with radius 16), exactly as scipy extends the signal.
    """
    i = torch.arange(-radius, n + radius, device=device)
    if border == "scipy_nearest":
        return i.clamp(0, n - 1)
    if border == "scipy_reflect":  # period 2n, edge sample repeated
        m = i.remainder(2 * n)
        return torch.where(m >= n, 2 * n - 1 - m, m)
    if border == "scipy_mirror":  # period 2n - 2, edge sample not repeated
        if n == 1:
            return torch.zeros_like(i)
        m = i.remainder(2 * n - 2)
        return torch.where(m >= n, 2 * n - 2 - m, m)
    raise ValueError(f"border={border!r} is not supported; valid: {', '.join(BORDERS)}")


class PostProcessor(nn.Module):
    """Upsample raw anomaly maps to the evaluation size and smooth them with a separable Gaussian.

    Args:
        sigma: Gaussian standard deviation in output pixels; ``0`` disables smoothing.
        truncate: kernel radius in sigmas (scipy's ``truncate``); radius = ``int(truncate * sigma + 0.5)``.
        border: ``"scipy_reflect"`` (scipy's default, symmetric padding), ``"scipy_mirror"`` or
            ``"scipy_nearest"``.
        upsample: interpolation used to reach ``size``: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
        align_corners: passed to ``F.interpolate`` for bilinear/bicubic. ``False`` is the suite's
            convention; some public code bases upsample with ``True``.
    """

    def __init__(
        self,
        sigma: float = 4.0,
        truncate: float = 4.0,
        border: str = "scipy_reflect",
        upsample: str = "bilinear",
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"PostProcessor: sigma must be finite and >= 0 (0 = no smoothing), got {sigma}")
        if not math.isfinite(truncate) or truncate <= 0:
            raise ValueError(f"PostProcessor: truncate must be a finite number > 0, got {truncate}")
        if border not in BORDERS:
            raise ValueError(f"PostProcessor: border={border!r} unsupported; valid: {', '.join(BORDERS)}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(
                f"PostProcessor: upsample={upsample!r} is not supported; valid: {', '.join(UPSAMPLE_MODES)}"
            )
        self.sigma = float(sigma)
        self.truncate = float(truncate)
        self.border = border
        self.upsample = upsample
        self.align_corners = align_corners
        kernel = gaussian_kernel1d(self.sigma, self.truncate) if self.sigma > 0 else torch.ones(1)
        # Float64 master copy; cast to the map's dtype at use. Not a parameter, not saved in checkpoints.
        self.register_buffer("kernel", kernel.double(), persistent=False)
        self._matrices: dict[tuple, torch.Tensor] = {}  # per (n_in, n_out, device, dtype)

    @property
    def radius(self) -> int:
        return (self.kernel.numel() - 1) // 2

    def extra_repr(self) -> str:
        return (
            f"sigma={self.sigma}, truncate={self.truncate}, radius={self.radius}, border={self.border!r}, "
            f"upsample={self.upsample!r}"
        )

    def forward(self, anomaly_map: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Post-process a batch of maps.

        Args:
            anomaly_map: raw maps, (B, h, w) or (B, 1, h, w), any real values.
            size: evaluation size (H, W); ``None`` keeps (h, w).

        Returns:
            (B, H, W) maps; float64 input stays float64, any other dtype gives float32.
        """
        x = anomaly_map
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ValueError(
                "PostProcessor: anomaly_map must have shape (B, h, w) or (B, 1, h, w), "
                f"got {tuple(anomaly_map.shape)}"
            )
        if x.dtype != torch.float64:
            x = x.float()
        h, w = x.shape[-2:]
        H, W = (h, w) if size is None else (int(size[0]), int(size[1]))
        if H < 1 or W < 1:
            raise ValueError(f"PostProcessor: size must be positive, got {size}")
        if (H, W) == (h, w) and self.sigma == 0:
            return x
        A_H = self.axis_matrix(h, H, x.device, x.dtype)
        A_W = self.axis_matrix(w, W, x.device, x.dtype)
        return A_H @ (x @ A_W.T)

    def axis_matrix(self, n_in: int, n_out: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The (n_out, n_in) linear map of one axis: interpolation to ``n_out``, then the bordered Gaussian."""
        key = (n_in, n_out, str(device), dtype)
        if key not in self._matrices:
            # Interpolating the identity basis yields the interpolation matrix, whatever the mode.
            U = torch.eye(n_in, dtype=torch.float64)
            if n_in != n_out:
                align = self.align_corners if self.upsample != "nearest" else None
                basis = U.view(n_in, 1, n_in, 1)
                U = F.interpolate(basis, size=(n_out, 1), mode=self.upsample, align_corners=align)[:, 0, :, 0].T
            if self.sigma > 0:
                r = self.radius
                k = self.kernel.detach().cpu().double()
                source = border_index(n_out, r, self.border)
                G = torch.zeros(n_out, n_out, dtype=torch.float64)
                rows = torch.arange(n_out)
                for t in range(2 * r + 1):
                    G.index_put_((rows, source[t : t + n_out]), k[t].expand(n_out), accumulate=True)
                U = G @ U
            self._matrices[key] = U.to(device=device, dtype=dtype)
        return self._matrices[key]


def max_score(maps: torch.Tensor) -> torch.Tensor:
    """Image score as the maximum of each (smoothed) map: (B, H, W) or (B, 1, H, W) -> (B,)."""
    if maps.ndim not in (3, 4):
        raise ValueError(f"max_score: maps must be (B, H, W) or (B, 1, H, W), got {tuple(maps.shape)}")
    return maps.flatten(1).amax(dim=1)
