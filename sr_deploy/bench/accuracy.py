"""Accuracy against HR ground truth with the standard SR protocol (Y-PSNR/SSIM, border shave)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from sr_deploy.data.datasets import EvalPair, make_eval_pair
from sr_deploy.data.image_io import hwc_to_nchw, nchw_to_hwc, to_float_rgb, to_uint
from sr_deploy.metrics import psnr, ssim
from sr_deploy.runtime.base import Upscaler

_LUMA = np.array([0.299, 0.587, 0.114])


def super_resolve_pair(upscaler: Upscaler, pair: EvalPair) -> np.ndarray:
    """Upscale ``pair.lr`` and return uint8 ``H x W x C`` with the channels of ``pair.hr``.

    Grey pairs run as replicated RGB; the output goes back to one channel by BT.601 luma weights
    (exact for equal channels), so grey images are scored on their own channel.
    """
    out = nchw_to_hwc(upscaler.run(hwc_to_nchw(to_float_rgb(pair.lr))))
    sr = to_uint(out)
    if pair.hr.shape[2] == 1:
        sr = to_uint((sr.astype(np.float64) @ _LUMA)[:, :, None] / 255.0)
    if sr.shape != pair.hr.shape:
        raise ValueError(f"{upscaler.name} returned {sr.shape} for {pair.name}, expected {pair.hr.shape}")
    return sr


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> dict[str, float]:
    """Y-channel PSNR (dB) and SSIM with ``scale`` pixels shaved from each border."""
    return {
        "psnr_y": psnr(sr, hr, crop_border=scale, test_y_channel=True),
        "ssim_y": ssim(sr, hr, crop_border=scale, test_y_channel=True),
    }


def evaluate(
    upscaler: Upscaler,
    images: Sequence[str | os.PathLike[str]],
    on_image: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Score ``upscaler`` on each image; one row per image: ``name, psnr_y, ssim_y``."""
    rows = []
    for path in images:
        pair = make_eval_pair(path, upscaler.scale)
        rows.append({"name": pair.name, **score(super_resolve_pair(upscaler, pair), pair.hr, upscaler.scale)})
        if on_image:
            on_image(pair.name)
    return pl.DataFrame(rows, schema={"name": pl.String, "psnr_y": pl.Float64, "ssim_y": pl.Float64})
