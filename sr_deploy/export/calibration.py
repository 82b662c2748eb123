"""Calibration data: random LR crops of real images, made the way the model sees LR at test time.

An HR crop of ``crop * scale`` pixels is cut at a random position from each image (modcropped),
then downscaled with MATLAB bicubic ``imresize(1/scale)`` (the SR protocol's degradation), giving
``crop x crop`` LR inputs rounded to 8 bits like a stored LR image. Images smaller than
``crop * scale`` are skipped (and reported). Deterministic for a given ``seed``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sr_deploy.data.datasets import collect_images
from sr_deploy.data.image_io import read_image, to_float_rgb
from sr_deploy.data.imresize import imresize, modcrop
from sr_deploy.errors import ExportError

DEFAULT_CROP = 48
DEFAULT_CROPS_PER_IMAGE = 4


@dataclass(frozen=True)
class CalibrationSet:
    """LR calibration batches (each ``n x 3 x crop x crop`` float32 in [0, 1], one per image) and
    where they came from: ``images`` used, ``skipped`` (too small), ``crop``, ``crops_per_image``."""

    batches: list[np.ndarray]
    images: list[str]
    crop: int
    crops_per_image: int
    seed: int
    skipped: list[str] = field(default_factory=list)

    @property
    def num_crops(self) -> int:
        return sum(len(b) for b in self.batches)

    def describe(self) -> dict[str, object]:
        """JSON-able provenance for the ``sr_deploy.calibration`` metadata and reports."""
        return {
            "images": [Path(p).name for p in self.images],
            "num_images": len(self.images),
            "crops": self.num_crops,
            "crop": self.crop,
            "crops_per_image": self.crops_per_image,
            "seed": self.seed,
            "skipped": [Path(p).name for p in self.skipped],
            "degradation": "MATLAB bicubic imresize 1/scale",
        }

    def feeds(self, input_name: str) -> Iterator[dict[str, np.ndarray]]:
        """One ORT feed per crop (``1 x 3 x crop x crop``)."""
        for batch in self.batches:
            for crop in batch:
                yield {input_name: np.ascontiguousarray(crop[None])}


def calibration_set(
    folder: str | os.PathLike[str] | None,
    scale: int,
    num_images: int | None = None,
    crops_per_image: int = DEFAULT_CROPS_PER_IMAGE,
    crop: int = DEFAULT_CROP,
    seed: int = 0,
) -> CalibrationSet:
    """Random LR crops from the images in ``folder`` (default: the embedded training photos).

    ``num_images``: draw at most this many images (a seeded random choice; all when None); those smaller than
    ``crop * scale`` are then skipped (listed in ``skipped``), so fewer may be used.
    Raises :class:`ExportError` when the folder is missing, empty or has no image large enough.
    """
    try:
        paths: Sequence[Path] = collect_images([folder] if folder else None, split="train")
    except (FileNotFoundError, ValueError) as exc:
        raise ExportError(f"calibration images: {exc}") from None
    rng = np.random.default_rng(seed)
    if num_images is not None:
        if num_images < 1:
            raise ExportError(f"the number of calibration images must be >= 1, got {num_images}")
        paths = sorted(rng.choice(np.array(paths, dtype=object), min(num_images, len(paths)), replace=False))
    hr_side = crop * scale
    batches, used, skipped = [], [], []
    for path in paths:
        hr = modcrop(to_float_rgb(read_image(path)).astype(np.float64), scale)
        if min(hr.shape[:2]) < hr_side:
            skipped.append(str(path))
            continue
        crops = []
        for _ in range(crops_per_image):
            y = int(rng.integers(0, hr.shape[0] - hr_side + 1))
            x = int(rng.integers(0, hr.shape[1] - hr_side + 1))
            lr = imresize(hr[y : y + hr_side, x : x + hr_side], 1.0 / scale)
            lr = np.round(np.clip(lr, 0.0, 1.0) * 255.0) / 255.0  # LR images are 8-bit at test time
            crops.append(lr.transpose(2, 0, 1))
        batches.append(np.ascontiguousarray(np.stack(crops), dtype=np.float32))
        used.append(str(path))
    if not batches:
        where = folder or "the embedded training images"
        raise ExportError(
            f"calibration images: no image in {where} is at least {hr_side}x{hr_side} pixels "
            f"(crop {crop} x scale {scale})"
        )
    return CalibrationSet(batches, used, crop, crops_per_image, seed, skipped)
