"""Image-level upscaling on top of any :class:`~sr_deploy.backends.base.Upscaler`: modes and bit depths.

Images are ``H x W x C`` uint8 or uint16 arrays as :func:`sr_deploy.data.read_image` returns them
(EXIF orientation applied; ``C`` = 1 grey, 3 RGB, 4 RGBA). The output has the same mode and
dtype at ``scale`` times the size:

- RGB goes through the model (tiled, :mod:`sr_deploy.runtime.tiling`).
- Grey is replicated to RGB for the model and reduced back with the ITU-R 601 luma weights
  (what Pillow's ``convert("L")`` uses).
- RGBA: the colour goes through the model, the alpha channel is upscaled separately with the
  MATLAB-compatible bicubic :func:`sr_deploy.data.imresize`, clipped to [0, 1] and re-attached.
- 16-bit in gives 16-bit out (the model sees [0, 1] floats either way).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sr_deploy.backends.base import Upscaler
from sr_deploy.data.image_io import (
    DEFAULT_MAX_PIXELS,
    check_pixel_limit,
    max_value,
    read_image,
    rgb_to_channels,
    to_float_rgb,
    to_uint,
    write_image,
)
from sr_deploy.data.imresize import imresize
from sr_deploy.runtime.tiling import plan_tiles, upscale_tiled


def upscale_image(
    upscaler: Upscaler,
    img: np.ndarray,
    tile: int | None = None,
    memory_budget: int | None = None,
) -> np.ndarray:
    """``H x W x C`` uint8/uint16 (C in 1, 3, 4) -> ``sH x sW x C`` of the same dtype.

    ``tile`` and ``memory_budget``: see :func:`sr_deploy.runtime.tiling.plan_tiles`.
    """
    height, width = model_input_size(img)
    plan = plan_tiles(upscaler, height, width, tile, memory_budget)
    return image_from_model(img, upscale_tiled(upscaler, image_to_model(img), plan), upscaler.scale)


def model_input_size(img: np.ndarray) -> tuple[int, int]:
    """``(H, W)`` of an ``H x W x C`` uint8/uint16 image with C in 1, 3, 4; ValueError for anything else."""
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an H x W x C image with C in 1, 3, 4, got shape {img.shape}")
    max_value(img)  # uint8 or uint16, else ValueError
    return img.shape[0], img.shape[1]


def image_to_model(img: np.ndarray) -> np.ndarray:
    """``H x W x C`` uint8/uint16 -> the model's ``3 x H x W`` float32 RGB in [0, 1] (grey replicated, alpha
    left out: :func:`image_from_model` upscales it separately)."""
    model_input_size(img)
    return np.ascontiguousarray(to_float_rgb(img).transpose(2, 0, 1))


def image_from_model(img: np.ndarray, sr: np.ndarray, scale: int) -> np.ndarray:
    """The model's ``3 x sH x sW`` float32 output for ``img`` (``H x W x C``) -> ``sH x sW x C`` in ``img``'s
    mode and dtype: grey by luma, alpha by bicubic (see the module docstring)."""
    channels = img.shape[2]
    out = to_uint(rgb_to_channels(sr.transpose(1, 2, 0), min(channels, 3)), img.dtype)
    if channels == 4:
        alpha = img[:, :, 3].astype(np.float64) / max_value(img)
        big = np.clip(imresize(alpha, float(scale)), 0.0, 1.0)  # float64 to the final rounding
        out = np.concatenate([out, to_uint(big, img.dtype)[:, :, None]], axis=2)
    return out


def upscale_file(
    upscaler: Upscaler,
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    tile: int | None = None,
    memory_budget: int | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Read ``source``, upscale it, write ``destination`` atomically (format from its suffix).

    Returns the output ``(width, height)``. Raises :class:`~sr_deploy.data.ImageReadError` for an
    unreadable input or one too large for ``max_pixels`` (see :func:`check_pixel_limit`; None: no
    limit) and ValueError when the output format cannot hold the image (e.g. 16-bit JPEG).
    """
    if max_pixels is not None:
        check_pixel_limit(source, upscaler.scale, max_pixels)
    out = upscale_image(upscaler, read_image(source), tile, memory_budget)
    write_image(Path(destination), out)
    return out.shape[1], out.shape[0]
