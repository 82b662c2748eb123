"""Upscale evaluation pairs and score them against HR ground truth (the standard SR protocol).

One way to turn an :class:`~sr_deploy.data.datasets.EvalPair` into a scored output, shared by
training validation, the bench, ``evaluate`` and the INT8 accuracy-budget search:

- :func:`upscale_pair`: the upscaler's output for the pair's LR, ``H x W x C`` float32 in [0, 1]
  (clipped, not rounded) with the channels of the pair's HR. Grey pairs run as replicated RGB and
  come back to one channel by the BT.601 luma weights on the float output
  (:func:`sr_deploy.data.image_io.rgb_to_channels`, the same rule as image upscaling).
- :func:`super_resolve_pair`: the same rounded to uint8, as a saved image would be.
- :func:`score`: Y-channel PSNR (dB) and SSIM with ``scale`` pixels shaved from each border.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from sr_deploy.backends.base import Upscaler
from sr_deploy.data.datasets import EvalPair, make_eval_pair
from sr_deploy.data.image_io import (
    ImageReadError,
    hwc_to_nchw,
    nchw_to_hwc,
    printable,
    rgb_to_channels,
    to_float_rgb,
    to_uint,
)
from sr_deploy.metrics import psnr, ssim, y_mse


def upscale_pair(upscaler: Upscaler, pair: EvalPair) -> np.ndarray:
    """``upscaler`` on ``pair.lr``: ``sH x sW x C`` float32 in [0, 1] (clipped, unrounded), ``C`` of ``pair.hr``.

    An image that breaks the model's size rules (a multiple, a minimum side: third-party models) is padded
    at the bottom and right with its edge pixels up to :meth:`ModelDescriptor.fit_size` and the output
    cropped back, as tiling does.
    """
    lr = hwc_to_nchw(to_float_rgb(pair.lr))
    height, width = lr.shape[2:]
    fit_h, fit_w = upscaler.descriptor.fit_size(height, width)
    if (fit_h, fit_w) != (height, width):
        lr = np.pad(lr, ((0, 0), (0, 0), (0, fit_h - height), (0, fit_w - width)), mode="edge")
    scale = upscaler.scale
    out = np.clip(nchw_to_hwc(upscaler.run(lr)[..., : height * scale, : width * scale]), 0.0, 1.0)
    sr = rgb_to_channels(out, pair.hr.shape[2])
    if sr.shape != pair.hr.shape:
        raise ValueError(f"{upscaler.name} returned {sr.shape} for {pair.name}, expected {pair.hr.shape}")
    return sr


def super_resolve_pair(upscaler: Upscaler, pair: EvalPair) -> np.ndarray:
    """:func:`upscale_pair` rounded to uint8 ``H x W x C`` (the channels of ``pair.hr``)."""
    return to_uint(upscale_pair(upscaler, pair))


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> dict[str, float]:
    """Y-channel PSNR (dB) and SSIM of uint8 ``sr`` against ``hr`` with ``scale`` pixels shaved from each border."""
    return {
        "psnr_y": psnr(sr, hr, crop_border=scale, test_y_channel=True),
        "ssim_y": ssim(sr, hr, crop_border=scale, test_y_channel=True),
    }


def mean_y_psnr(outputs: Sequence[np.ndarray], pairs: Sequence[EvalPair], scale: int) -> float:
    """Mean Y-PSNR (dB) of :func:`upscale_pair` outputs against the pairs' HR, rounded to uint8 first."""
    scores = [psnr(to_uint(o), p.hr, crop_border=scale, test_y_channel=True)
              for o, p in zip(outputs, pairs, strict=True)]
    return float(np.mean(scores))


def mean_y_mse(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray], scale: int) -> float:
    """Mean over pairs of the unrounded Y-channel MSE (0..255 scale, ``scale`` pixels shaved) between
    two lists of :func:`upscale_pair` outputs: the error power one model adds to another."""
    return float(np.mean([y_mse(a * 255.0, b * 255.0, crop_border=scale)
                          for a, b in zip(outputs, reference, strict=True)]))


def image_names(images: Sequence[str | os.PathLike[str]]) -> list[str]:
    """The name each image is reported under: its stem (``baby``), or where stems repeat its file name
    (``in.png``, ``in.jpg``), or where those repeat too its path; printable even when not UTF-8."""
    paths = [Path(p) for p in images]
    stems, names = Counter(p.stem for p in paths), Counter(p.name for p in paths)
    return [printable(p.stem if stems[p.stem] == 1 else p.name if names[p.name] == 1 else str(p)) for p in paths]


def evaluate(
    upscaler: Upscaler,
    images: Sequence[str | os.PathLike[str]],
    on_image: Callable[[str], None] | None = None,
    *,
    on_skip: Callable[[str, str], None] | None = None,
    max_pixels: int | None = None,
) -> pl.DataFrame:
    """Score ``upscaler`` on each HR image (standard pair: modcrop, MATLAB bicubic LR); one row per
    image: ``name`` (:func:`image_names`), ``psnr_y, ssim_y``.

    An image that cannot be read, is too small or (from its header) has more than ``max_pixels`` pixels raises
    :class:`~sr_deploy.data.image_io.ImageReadError`; with ``on_skip`` it is left out instead and
    ``on_skip(name, reason)`` is called. The whole LR image is one ``upscaler.run``: pass a
    :class:`~sr_deploy.runtime.tiling.TiledUpscaler` to bound memory on large images.
    """
    if isinstance(images, str | os.PathLike):
        raise TypeError(f"images must be a list of image paths, got the single path {os.fspath(images)!r} "
                        "(collect_images lists a folder's)")
    rows = []
    for path, name in zip(images, image_names(images), strict=True):
        try:
            pair = make_eval_pair(path, upscaler.scale, max_pixels)
        except ImageReadError as exc:
            if on_skip is None:
                raise
            on_skip(name, exc.cause)
            continue
        rows.append({"name": name, **score(super_resolve_pair(upscaler, pair), pair.hr, upscaler.scale)})
        if on_image:
            on_image(name)
    return pl.DataFrame(rows, schema={"name": pl.String, "psnr_y": pl.Float64, "ssim_y": pl.Float64})
