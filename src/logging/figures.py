"""Qualitative figures with numpy and OpenCV: image, ground truth and anomaly-map overlays.

All panels are RGB ``uint8`` arrays ``(H, W, 3)``. Maps are coloured with the JET colormap after a
min-max stretch over a caller-chosen range (one range per category, so a normal sample's map
looks calm beside an anomalous one's), as in the papers' qualitative figures.

Public API: ``to_rgb``, ``colorize``, ``overlay``, ``mask_panel``, ``titled``, ``grid``,
``write_png``, ``read_png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def to_rgb(image: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] (a denormalised image) -> ``(H, W, 3)`` uint8."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {image.shape}")
    return (np.clip(image.transpose(1, 2, 0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def colorize(anomaly_map: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(H, W)`` scores -> ``(H, W, 3)`` JET colours, ``lo`` blue and ``hi`` red."""
    span = hi - lo if hi > lo else 1.0
    scaled = np.clip((anomaly_map.astype(np.float32) - lo) / span, 0.0, 1.0)
    bgr = cv2.applyColorMap((scaled * 255.0).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a coloured map over an image of the same size."""
    heat = _resize(heat, image.shape[:2])
    return cv2.addWeighted(image, 1.0 - alpha, heat, alpha, 0.0)


def mask_panel(mask: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
    """Ground truth: white defect on black, or the defect outlined in red on ``image``."""
    binary = (mask > 0.5).astype(np.uint8)
    if image is None:
        return np.repeat(binary[..., None] * 255, 3, axis=2)
    panel = image.copy()
    contours, _ = cv2.findContours(_resize(binary, image.shape[:2]), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(panel, contours, -1, (255, 0, 0), max(1, image.shape[0] // 112))
    return panel


def titled(panel: np.ndarray, text: str, size: int | None = None, height: int = 18) -> np.ndarray:
    """The panel (resized to ``size`` x ``size`` when given) with a white caption bar above it."""
    if size is not None:
        panel = _fit(panel, size)
    bar = np.full((height, panel.shape[1], 3), 255, np.uint8)
    scale = 0.4 * height / 18
    cv2.putText(bar, text[: max(1, panel.shape[1] // 7)], (3, height - 5), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, panel], axis=0)


def grid(rows: Sequence[Sequence[np.ndarray]], cell: int = 160, gap: int = 4) -> np.ndarray:
    """Panels laid out row by row, each resized to ``cell`` x ``cell`` (titles kept above)."""
    if not rows or not any(rows):
        raise ValueError("grid needs at least one panel")
    width = max(len(r) for r in rows)
    cells = [[_fit(p, cell) for p in r] for r in rows]
    height = max(p.shape[0] for r in cells for p in r)
    out = np.full((len(rows) * (height + gap) - gap, width * (cell + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(cells):
        for j, panel in enumerate(row):
            y, x = i * (height + gap), j * (cell + gap)
            out[y:y + panel.shape[0], x:x + panel.shape[1]] = panel
    return out


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write the figure {path}")
    return path


def read_png(path: str | Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"could not read the figure {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if array.shape[:2] == tuple(size):
        return array
    return cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def _fit(panel: np.ndarray, cell: int) -> np.ndarray:
    """Resize the square image part to ``cell``; a caption bar (if any) keeps its height."""
    h, w = panel.shape[:2]
    bar = h - w if h > w else 0
    body = cv2.resize(panel[bar:], (cell, cell), interpolation=cv2.INTER_AREA if w > cell else cv2.INTER_LINEAR)
    if not bar:
        return body
    head = cv2.resize(panel[:bar], (cell, bar), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([head, body], axis=0)
