"""Real LR input batches for comparisons: crops of the MATLAB-bicubic LR of real photos.

A comparison (export gate, bench parity, GPU check) runs on real images at two different sizes,
one of them a batch of two, so a graph that only works at one size or batch 1 fails it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from sr_deploy.data.datasets import embedded_images, make_eval_pair
from sr_deploy.data.image_io import to_float_rgb
from sr_deploy.data.imresize import imresize

#: Parity batches ``(N, H, W)`` in LR pixels: two sizes, one of them a batch of two.
PARITY_SIZES = ((1, 40, 56), (2, 27, 33))


def lr_crops(
    paths: Sequence[str | os.PathLike[str]], scale: int, batch: int, height: int, width: int, seed: int
) -> np.ndarray:
    """``batch x 3 x height x width`` float32 crops in [0, 1] of the MATLAB-bicubic LR of ``paths``
    (image ``i`` of the batch comes from ``paths[i % len(paths)]``; LR images smaller than the
    crop are first enlarged with bicubic ``imresize``)."""
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(batch):
        lr = to_float_rgb(make_eval_pair(paths[i % len(paths)], scale).lr)
        if lr.shape[0] < height or lr.shape[1] < width:
            lr = imresize(lr, output_shape=(max(height, lr.shape[0]), max(width, lr.shape[1])))
        y = int(rng.integers(0, lr.shape[0] - height + 1))
        x = int(rng.integers(0, lr.shape[1] - width + 1))
        crops.append(lr[y : y + height, x : x + width].transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(crops), dtype=np.float32)


def parity_inputs(
    scale: int,
    static: tuple[int, int] | None = None,
    paths: Sequence[str | os.PathLike[str]] | None = None,
    sizes: Sequence[tuple[int, int, int]] = PARITY_SIZES,
) -> list[np.ndarray]:
    """One batch of real LR crops per ``(N, H, W)`` of ``sizes`` (default ``1 x 3 x 40 x 56`` and
    ``2 x 3 x 27 x 33``; for a static ``(H, W)`` model every batch is ``N x 3 x H x W``), each from
    a different rotation of ``paths`` (default: the embedded evaluation photos)."""
    images: list[str | os.PathLike[str]] = list(paths) if paths else list(embedded_images("eval"))
    shapes = [(n, *static) if static else (n, h, w) for n, h, w in sizes]
    return [lr_crops(images[i:] + images[:i], scale, n, h, w, seed=i) for i, (n, h, w) in enumerate(shapes)]
