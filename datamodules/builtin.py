"""The built-in benchmark: an MVTec-layout dataset made on first use from photos in scikit-image.

Why: the suite must run end to end on a machine without MVTec/VisA and without network. Ten real
photos shipped inside ``skimage.data`` become ten categories, five textures and five objects:

* half ``builtin-A``: brick, gravel, coins, chelsea, retina
* half ``builtin-B``: grass, coffee, astronaut, immunohistochemistry, cell
* ``builtin``: all ten.

The cross-dataset protocol trains on one half's test split and evaluates on the other half.

Per category: 16 ``train/good``, 8 ``test/good`` and 3 test images for each of four defect types
(12 anomalous), all 256 x 256 PNG. Normal images are random square crops (70-100 % of the
short side; 85-100 % for objects), horizontal flips (plus vertical ones for textures) and a
brightness change of at most 8 % of the photo. Anomalous images are such normal images with one
defect painted in, and its exact binary mask (``ground_truth/<defect>/<stem>_mask.png``, 0/255):

* ``scratch``: a thin (1-3 px) polyline of 2-4 straight segments in a constant bright or dark
  colour; mask = the drawn pixels.
* ``stain``: a soft-edged colour blob (union of ellipses, Gaussian-feathered) blended with a
  foreign colour; mask = where the blend weight is at least 40 % of its peak (the fainter
  feathered rim, at most a few pixels wide, is left unlabelled).
* ``hole``: an irregular dark disk with a lighter rim; mask = disk and rim.
* ``foreign``: a disk cut from a DIFFERENT photo (another category) pasted with a hard circular
  edge; mask = the disk.

These recipes are deliberately unlike VTFusion's DAS training synthesis (rectangular cut-paste
from the same image or another shot, Gaussian blur of a region, random-walk cracks that darken
the image's own luminance, additive noise), so a VTFusion run on the built-in benchmark is not
evaluated on the very defects it was trained to detect.

Generation is deterministic: every image draws from ``np.random.default_rng([seed, category,
split/defect, i])``; resampling, blurs and blends are done with numpy/scipy in float64 and with
OpenCV's bit-exact ``INTER_LINEAR_EXACT`` and integer drawing primitives; PNGs are written by
OpenCV at a fixed compression level. Files are byte-identical across runs and machines with the
pinned package versions. The dataset is written to a temporary sibling folder and renamed into
place, so a killed generation never leaves a half dataset behind.

Cache location: ``<cache>/builtin-v1`` where ``<cache>`` is the ``cache_dir`` argument, else
``$ADSUITE_CACHE``, else ``~/.cache/clip-ad-suite``.

Public API: ``BUILTIN_A``, ``BUILTIN_B``, ``BUILTIN_CATEGORIES``, ``DEFECT_TYPES``,
``builtin_root``, ``generate_builtin``, ``ensure_builtin``, ``BuiltinReader``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from datamodules.base import DatasetError, Sample
from datamodules.folder import FolderReader
from datamodules.mvtec import check_counts

VERSION = "builtin-v1"
BUILTIN_A = ("brick", "gravel", "coins", "chelsea", "retina")
BUILTIN_B = ("grass", "coffee", "astronaut", "immunohistochemistry", "cell")
BUILTIN_CATEGORIES = BUILTIN_A + BUILTIN_B
TEXTURES = frozenset({"brick", "gravel", "grass", "immunohistochemistry", "cell"})
DEFECT_TYPES = ("scratch", "stain", "hole", "foreign")
SIZE = 256
SEED = 20240917
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3]
_STAMP = "builtin.json"


def builtin_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder of the built-in benchmark: ``<cache_dir | $ADSUITE_CACHE | ~/.cache/clip-ad-suite>/builtin-v1``."""
    base = cache_dir or os.environ.get("ADSUITE_CACHE") or Path.home() / ".cache" / "clip-ad-suite"
    return Path(base).expanduser() / VERSION


# ----------------------------------------------------------------------------- image primitives


def _load_photo(category: str) -> np.ndarray:
    """uint8 RGB (H, W, 3) of the skimage photo behind a category."""
    from skimage import data

    image = getattr(data, category)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3].astype(np.uint8))
    factor = min(image.shape[:2]) // 384
    if factor > 1:  # the 1411 px retina: shrink once rather than at every crop
        h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        blocks = image[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor, 3)
        image = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)
    return image


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """Deterministic square resize: integer block mean (anti-aliasing) then bit-exact bilinear."""
    factor = image.shape[0] // size
    if factor > 1:
        side = factor * (image.shape[0] // factor)
        blocks = image[:side, :side].astype(np.float64).reshape(side // factor, factor, side // factor, factor, -1)
        image = np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)
    if image.shape[0] != size:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR_EXACT)
    return image


def _random_crop(photo: np.ndarray, rng: np.random.Generator, scale: tuple[float, float], size: int) -> np.ndarray:
    side = min(photo.shape[:2])
    crop = int(side * rng.uniform(*scale))
    top = int(rng.integers(0, photo.shape[0] - crop + 1))
    left = int(rng.integers(0, photo.shape[1] - crop + 1))
    return _resize(photo[top : top + crop, left : left + crop], size)


def _normal_image(photo: np.ndarray, category: str, rng: np.random.Generator) -> np.ndarray:
    texture = category in TEXTURES
    image = _random_crop(photo, rng, (0.7, 1.0) if texture else (0.85, 1.0), SIZE)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if texture and rng.random() < 0.5:
        image = image[::-1]
    gain = rng.uniform(0.92, 1.08)
    return np.clip(np.rint(image.astype(np.float64) * gain), 0, 255).astype(np.uint8)


def _point(rng: np.random.Generator, margin: int = 40) -> np.ndarray:
    return rng.integers(margin, SIZE - margin, size=2)


def _scratch(image: np.ndarray, rng: np.random.Generator, photos: dict) -> np.ndarray:
    points = [_point(rng)]
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(int(rng.integers(2, 5))):
        heading += rng.uniform(-0.6, 0.6)
        step = rng.uniform(20, 50) * np.array([np.cos(heading), np.sin(heading)])
        points.append(np.clip(np.rint(points[-1] + step), 4, SIZE - 5))
    polyline = [np.array(points, dtype=np.int32).reshape(-1, 1, 2)]
    thickness = int(rng.integers(1, 4))
    colour = int(rng.integers(235, 256)) if rng.random() < 0.5 else int(rng.integers(5, 35))
    cv2.polylines(image, polyline, False, (colour,) * 3, thickness, lineType=cv2.LINE_8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.polylines(mask, polyline, False, 255, thickness, lineType=cv2.LINE_8)
    return mask


_STAIN_COLOURS = np.array([(150, 75, 20), (30, 45, 150), (40, 125, 45), (120, 30, 110), (205, 170, 40)], np.float64)


def _stain(image: np.ndarray, rng: np.random.Generator, photos: dict) -> np.ndarray:
    centre = _point(rng, 50)
    blob = np.zeros((SIZE, SIZE), np.uint8)
    for _ in range(int(rng.integers(3, 6))):
        offset = np.rint(rng.normal(0, 7, size=2)).astype(int)
        axes = (int(rng.integers(8, 22)), int(rng.integers(8, 22)))
        cv2.ellipse(blob, tuple(int(v) for v in centre + offset), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    alpha = ndimage.gaussian_filter(blob.astype(np.float64), sigma=2.0, mode="constant")
    alpha /= alpha.max()
    alpha[alpha < 0.1] = 0.0  # keep the feathered rim short, so unlabelled changes stay next to the mask
    strength = rng.uniform(0.55, 0.8)
    colour = np.clip(_STAIN_COLOURS[int(rng.integers(len(_STAIN_COLOURS)))] + rng.normal(0, 12, size=3), 0, 255)
    weight = (strength * alpha)[..., None]
    blended = image.astype(np.float64) * (1 - weight) + colour * weight
    image[...] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return np.where(alpha >= 0.4, 255, 0).astype(np.uint8)


def _hole(image: np.ndarray, rng: np.random.Generator, photos: dict) -> np.ndarray:
    centre = _point(rng)
    radius = rng.uniform(10, 22)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=14))
    radii = radius * (1 + rng.uniform(-0.25, 0.25, size=14))
    polygon = np.rint(centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]).astype(np.int32)
    polygon = [polygon.reshape(-1, 1, 2)]
    dark = int(rng.integers(10, 45))
    rim = int(np.clip(image[centre[1], centre[0]].mean() + rng.uniform(50, 90), 0, 255))
    cv2.fillPoly(image, polygon, (dark,) * 3)
    cv2.polylines(image, polygon, True, (rim,) * 3, 2, lineType=cv2.LINE_8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(mask, polygon, 255)
    cv2.polylines(mask, polygon, True, 255, 2, lineType=cv2.LINE_8)
    return mask


def _foreign(image: np.ndarray, rng: np.random.Generator, photos: dict) -> np.ndarray:
    others = sorted(photos)
    source = photos[others[int(rng.integers(len(others)))]]
    radius = int(rng.integers(12, 29))
    patch = _random_crop(source, rng, (0.15, 0.4), 2 * radius + 1)
    disk = np.zeros((2 * radius + 1, 2 * radius + 1), np.uint8)
    cv2.circle(disk, (radius, radius), radius, 1, -1)
    cx, cy = _point(rng, radius + 4)
    region = (slice(cy - radius, cy + radius + 1), slice(cx - radius, cx + radius + 1))
    image[region][disk > 0] = patch[disk > 0]
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[region][disk > 0] = 255
    return mask


DEFECTS: dict[str, Callable[[np.ndarray, np.random.Generator, dict], np.ndarray]] = {
    "scratch": _scratch,
    "stain": _stain,
    "hole": _hole,
    "foreign": _foreign,
}


# ----------------------------------------------------------------------------- generation


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image, _PNG_PARAMS):
        raise OSError(f"could not write {path}")


def generate_builtin(
    root: str | os.PathLike,
    categories: Sequence[str] = BUILTIN_CATEGORIES,
    n_train: int = 16,
    n_test_good: int = 8,
    n_per_defect: int = 3,
    progress: bool = True,
) -> Path:
    """Write the benchmark to ``root`` (must not exist) atomically; returns ``root``.

    Smaller counts give a small variant (tests). Image ``i`` of a given category/split/defect is
    the same whatever the counts, so a small variant is a subset of the full one.
    """
    root = Path(root).expanduser()
    unknown = [c for c in categories if c not in BUILTIN_CATEGORIES]
    if unknown:
        raise DatasetError(f"builtin: unknown categories {unknown}; valid: {list(BUILTIN_CATEGORIES)}")
    if root.exists():
        raise DatasetError(f"builtin: {root} already exists; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-tmp-", dir=root.parent))
    try:
        photos = {c: _load_photo(c) for c in BUILTIN_CATEGORIES}
        total = len(categories) * (n_train + n_test_good + n_per_defect * len(DEFECT_TYPES))
        with tqdm(total=total, desc=f"generating {root.name}", disable=not progress) as bar:
            for category in categories:
                cat_id = BUILTIN_CATEGORIES.index(category)
                photo = photos[category]
                others = {c: p for c, p in photos.items() if c != category}
                for split, folder, code, count in (("train", "good", 0, n_train), ("test", "good", 1, n_test_good)):
                    for i in range(count):
                        rng = np.random.default_rng([SEED, cat_id, code, i])
                        _write(tmp / category / split / folder / f"{i:03d}.png", _normal_image(photo, category, rng))
                        bar.update()
                for d, defect in enumerate(DEFECT_TYPES):
                    for i in range(n_per_defect):
                        rng = np.random.default_rng([SEED, cat_id, 2 + d, i])
                        image = np.ascontiguousarray(_normal_image(photo, category, rng))
                        mask = DEFECTS[defect](image, rng, others)
                        _write(tmp / category / "test" / defect / f"{i:03d}.png", image)
                        _write(tmp / category / "ground_truth" / defect / f"{i:03d}_mask.png", mask)
                        bar.update()
        stamp = {
            "version": VERSION,
            "categories": list(categories),
            "n_train": n_train,
            "n_test_good": n_test_good,
            "n_per_defect": n_per_defect,
        }
        (tmp / _STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / _STAMP).is_file():  # not a concurrent generator finishing first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _stamp(root: Path) -> dict:
    try:
        return json.loads((root / _STAMP).read_text())
    except (OSError, ValueError):
        raise DatasetError(
            f"builtin: {root} exists but is not a complete built-in benchmark (no readable {_STAMP}); "
            "delete it to regenerate"
        ) from None


def ensure_builtin(root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Return the benchmark folder (``root`` or :func:`builtin_root`), generating it if absent."""
    path = Path(root).expanduser() if root is not None else builtin_root()
    if not path.exists():
        generate_builtin(path, progress=progress)
    _stamp(path)
    return path


class BuiltinReader(FolderReader):
    """Reader for ``builtin`` / ``builtin-A`` / ``builtin-B``; generates the data on first use.

    ``root`` may be None (default cache folder). Counts are checked against the generator's stamp.
    """

    def __init__(self, name: str = "builtin", cache_dir: str | os.PathLike | None = None) -> None:
        halves = {"builtin": BUILTIN_CATEGORIES, "builtin-A": BUILTIN_A, "builtin-B": BUILTIN_B}
        if name not in halves:
            raise DatasetError(f"builtin: unknown variant '{name}'; valid: {sorted(halves)}")
        super().__init__(mask_suffix="_mask", known_categories=halves[name])
        self.name = name
        self.cache_dir = cache_dir

    def resolve_root(self, root: str | os.PathLike | None) -> Path:
        return Path(root).expanduser() if root is not None else builtin_root(self.cache_dir)

    def prepare(self, root: str | os.PathLike | None) -> Path:
        """Generate the benchmark if it is not there yet (call on one process first)."""
        return ensure_builtin(self.resolve_root(root))

    def categories(self, root: str | os.PathLike | None = None) -> list[str]:
        return list(self.known_categories or ())

    def read(self, root: str | os.PathLike | None, split: str, categories: Sequence[str] | None = None) -> list[Sample]:
        path = self.prepare(root)
        stamp = _stamp(path)
        selected = self.select(path, categories)
        absent = [c for c in selected if c not in stamp["categories"]]
        if absent:
            raise DatasetError(f"{self.name}: {path} was generated without categories {absent}")
        samples = super().read(path, split, selected)
        per_defect = stamp["n_per_defect"] * len(DEFECT_TYPES)
        expected = {c: (stamp["n_train"], stamp["n_test_good"], per_defect) for c in selected}
        check_counts(samples, split, expected, self.name, str(path))
        return samples
