"""Training data: random HR patches with flips/rotations and their MATLAB-bicubic LR, made on the fly.

Every sample is a pure function of ``(seed, sample index)``, so a run resumed at step ``k`` sees
exactly the batches an uninterrupted run would have seen, whatever the number of loader workers.
Each rank of a distributed run takes its own disjoint indices.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sr_deploy.data.image_io import ImageReadError, read_image
from sr_deploy.data.imresize import imresize


@dataclass(frozen=True)
class HRImages:
    """Decoded HR training images (``H x W x 3`` uint8) and what was left out."""

    images: list[np.ndarray]
    names: list[str]
    skipped_small: list[str]


def load_hr_images(paths: Sequence[str | os.PathLike[str]], min_side: int) -> HRImages:
    """Decode every image (grey -> RGB, alpha dropped, 16-bit -> 8-bit); skip those smaller than ``min_side``.

    Raises ValueError listing every unreadable file, or when no image is large enough.
    """
    images, names, small, bad = [], [], [], []
    for p in paths:
        try:
            img = read_image(p)
        except ImageReadError as exc:
            bad.append(str(exc))
            continue
        if img.dtype == np.uint16:
            img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
        img = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[:, :, :3]
        if min(img.shape[:2]) < min_side:
            small.append(Path(p).name)
            continue
        images.append(np.ascontiguousarray(img))
        names.append(str(p))
    if bad:
        raise ValueError(f"{len(bad)} unreadable training image(s):\n  " + "\n  ".join(bad))
    if not images:
        raise ValueError(
            f"no training image is at least {min_side} px on its shorter side ({len(small)} skipped as too small)"
        )
    return HRImages(images, names, small)


class PatchDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Sample ``i`` -> ``(lr, hr)``: ``3 x p/s x p/s`` and ``3 x p x p`` float32 in [0, 1].

    An image is drawn uniformly, then a random ``patch x patch`` crop, a random flip and a random
    multiple of 90-degree rotation; LR is MATLAB bicubic 1/scale of the crop, rounded to uint8 as
    the evaluation protocol's LR images are.
    """

    def __init__(self, images: HRImages, patch: int, scale: int, seed: int) -> None:
        if patch % scale:
            raise ValueError(f"patch size {patch} must be a multiple of the scale {scale}")
        self.images, self.patch, self.scale, self.seed = images.images, patch, scale, seed

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        img = self.images[int(rng.integers(len(self.images)))]
        h, w = img.shape[:2]
        top, left = int(rng.integers(h - self.patch + 1)), int(rng.integers(w - self.patch + 1))
        hr = img[top : top + self.patch, left : left + self.patch]
        if rng.random() < 0.5:
            hr = hr[:, ::-1]
        hr = np.ascontiguousarray(np.rot90(hr, int(rng.integers(4))))
        lr = imresize(hr, 1.0 / self.scale)
        to_t = lambda a: torch.from_numpy(a.transpose(2, 0, 1).astype(np.float32) / 255.0)  # noqa: E731
        return to_t(lr), to_t(hr)


class StepBatchSampler(Sampler[list[int]]):
    """Yields the sample indices of steps ``start_step .. total_steps-1`` for one rank.

    Step ``k`` of rank ``r`` in a world of ``n`` uses indices ``((k * n + r) * b) .. + b - 1``.
    """

    def __init__(self, batch: int, start_step: int, total_steps: int, rank: int = 0, world: int = 1) -> None:
        self.batch, self.start, self.total, self.rank, self.world = batch, start_step, total_steps, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.total):
            base = (step * self.world + self.rank) * self.batch
            yield list(range(base, base + self.batch))

    def __len__(self) -> int:
        return max(0, self.total - self.start)
