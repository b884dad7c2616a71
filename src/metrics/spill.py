"""Disk spill of anomaly maps and masks between the two passes of the pixel metrics.

Pass 1 (during the test batches) cannot bin pixels yet, because the bin edges depend on each
category's score range, which is only known at the end. Holding the maps in RAM would need 1.7 GiB
for MVTec AD at 518 px (more on bigger sets), so each rank appends them to files instead: one
float32 file and one bit-packed mask file per category, in a private temporary directory that is
deleted when the store is closed. Pass 2 streams each category's files once, in large contiguous
chunks.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np


@dataclass(frozen=True)
class SpillRecord:
    """Where one image's map and mask live in its category's spill files."""

    position: int  # the sample's position among this rank's updates (for de-duplication)
    group: str  # defect group: "good" for normal images, else the defect type
    height: int
    width: int
    map_offset: int  # byte offset in the category's map file
    mask_offset: int  # byte offset in the category's mask file; -1 when the mask is empty
    vmin: float
    vmax: float

    @property
    def pixels(self) -> int:
        """Pixels per map."""
        return self.height * self.width


class SpillStore:
    """Per-rank, per-category append-only files of float32 maps and bit-packed masks.

    Args:
        root: parent directory for the private temporary directory; ``None`` uses the system's
            temporary directory. Nothing is created before the first :meth:`append`.
    """

    def __init__(self, root: str | None = None) -> None:
        self._root = root
        self._dir: Path | None = None
        self._files: dict[str, tuple[BinaryIO, BinaryIO]] = {}
        self._records: dict[str, list[SpillRecord]] = {}
        self._sizes: dict[str, list[int]] = {}

    @property
    def directory(self) -> Path | None:
        """The spill folder, or None before the first write."""
        return self._dir

    def _open(self, category: str) -> tuple[BinaryIO, BinaryIO]:
        if self._dir is None:
            if self._root is not None:
                Path(self._root).mkdir(parents=True, exist_ok=True)
            self._dir = Path(tempfile.mkdtemp(prefix="anomaly-metrics-", dir=self._root))
        # File names by position, so that any category string is safe.
        stem = self._dir / f"category{len(self._files):04d}"
        files = (open(f"{stem}.maps", "wb"), open(f"{stem}.masks", "wb"))  # closed in close()
        self._files[category] = files
        self._records[category] = []
        self._sizes[category] = [0, 0]
        return files

    def append(
        self, category: str, position: int, group: str, anomaly_map: np.ndarray, mask: np.ndarray
    ) -> None:
        """Store one image: ``anomaly_map`` (H, W) float32, ``mask`` (H, W) bool."""
        files = self._files.get(category) or self._open(category)
        sizes = self._sizes[category]
        data = np.ascontiguousarray(anomaly_map, dtype=np.float32)
        map_offset = sizes[0]
        files[0].write(memoryview(data).cast("B"))  # no copy
        sizes[0] += data.nbytes
        mask_offset = -1
        if mask.any():
            packed = np.packbits(mask.ravel())
            mask_offset = sizes[1]
            files[1].write(packed.tobytes())
            sizes[1] += packed.nbytes
        self._records[category].append(
            SpillRecord(
                position=position,
                group=group,
                height=int(data.shape[0]),
                width=int(data.shape[1]),
                map_offset=map_offset,
                mask_offset=mask_offset,
                vmin=float(data.min()),
                vmax=float(data.max()),
            )
        )

    def categories(self) -> list[str]:
        """Categories with spilled records."""
        return list(self._records)

    def records(self, category: str) -> list[SpillRecord]:
        """The spilled records of ``category`` (empty if none)."""
        return self._records.get(category, [])

    def flush(self) -> None:
        """Flush every open spill file."""
        for files in self._files.values():
            for f in files:
                f.flush()

    def chunks(
        self, category: str, skip: set[int], chunk_pixels: int
    ) -> Iterator[tuple[list[SpillRecord], np.ndarray]]:
        """Runs of consecutive records not in ``skip`` (by position), with their maps concatenated.

        Yields ``(records, values)``: ``values`` is (sum of the records' pixels,) float32, read from
        disk in one call per chunk.
        """
        self.flush()
        records = self.records(category)
        if not records:
            return
        path = self._files[category][0].name
        with open(path, "rb") as f:
            run: list[SpillRecord] = []
            run_pixels = 0

            def read(run: list[SpillRecord], run_pixels: int) -> tuple[list[SpillRecord], np.ndarray]:
                f.seek(run[0].map_offset)
                return run, np.fromfile(f, dtype=np.float32, count=run_pixels)

            for record in records:
                if record.position in skip:
                    if run:
                        yield read(run, run_pixels)
                    run, run_pixels = [], 0
                    continue
                run.append(record)
                run_pixels += record.pixels
                if run_pixels >= chunk_pixels:
                    yield read(run, run_pixels)
                    run, run_pixels = [], 0
            if run:
                yield read(run, run_pixels)

    def read_mask(self, category: str, record: SpillRecord) -> np.ndarray:
        """The record's (H, W) bool mask (all False when it was stored empty)."""
        if record.mask_offset < 0:
            return np.zeros((record.height, record.width), dtype=bool)
        self.flush()
        n_bytes = (record.pixels + 7) // 8
        with open(self._files[category][1].name, "rb") as f:
            f.seek(record.mask_offset)
            packed = np.fromfile(f, dtype=np.uint8, count=n_bytes)
        bits = np.unpackbits(packed, count=record.pixels).astype(bool)
        return bits.reshape(record.height, record.width)

    def close(self) -> None:
        """Close and delete every file; the store is empty afterwards."""
        for files in self._files.values():
            for f in files:
                f.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self._files.clear()
        self._records.clear()
        self._sizes.clear()
