"""Image-quality metrics as pure functions (no state, no I/O), following BasicSR's ``psnr_ssim.py``.

All functions take two images of the same shape, ``H x W`` or ``H x W x C``, with values on the
0..255 scale (uint8, or float already on that scale), and return a Python float.
``crop_border`` shaves that many pixels from every side before measuring (the SR convention is
the scale factor). ``test_y_channel`` converts RGB to the BT.601 luma Y in [16, 235] the way
MATLAB's ``rgb2ycbcr`` does on uint8 images, i.e. rounded to integers; single-channel (grey)
images are measured on their own channel.
"""

from __future__ import annotations

import math

import numpy as np

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0


def rgb_to_y(img: np.ndarray, round_to_int: bool = True) -> np.ndarray:
    """``H x W x 3`` RGB on the 0..255 scale -> ``H x W`` BT.601 Y in [16, 235] (MATLAB ``rgb2ycbcr``).

    With ``round_to_int`` (MATLAB's behaviour for uint8 input) Y is rounded to integers.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects H x W x 3, got shape {img.shape}")
    y = img.astype(np.float64) @ _Y_WEIGHTS + 16.0
    return np.round(y) if round_to_int else y


def _prepare(img: np.ndarray, crop_border: int, test_y_channel: bool, round_y: bool = True) -> np.ndarray:
    x = img.astype(np.float64)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if test_y_channel and x.ndim == 3:
        x = rgb_to_y(x, round_to_int=round_y)
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border]
    return x


def _check(img1: np.ndarray, img2: np.ndarray) -> None:
    if img1.shape != img2.shape:
        raise ValueError(f"images differ in shape: {img1.shape} vs {img2.shape}")


def psnr(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB for peak 255; ``inf`` for identical images."""
    _check(img1, img2)
    a = _prepare(img1, crop_border, test_y_channel)
    b = _prepare(img2, crop_border, test_y_channel)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def y_mse(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0) -> float:
    """Mean squared difference of the unrounded BT.601 Y channels (0..255 scale; grey images on their
    own channel) with ``crop_border`` pixels shaved: the error power one output adds to another."""
    _check(img1, img2)
    a = _prepare(img1, crop_border, test_y_channel=True, round_y=False)
    b = _prepare(img2, crop_border, test_y_channel=True, round_y=False)
    return float(np.mean((a - b) ** 2))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """2-D correlation keeping only fully overlapping positions (MATLAB ``filter2(..., 'valid')``)."""
    k = window.shape[0]
    view = np.lib.stride_tricks.sliding_window_view(x, (k, k))
    return np.einsum("ijkl,kl->ij", view, window)


def _ssim_single(a: np.ndarray, b: np.ndarray) -> float:
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    w = _gaussian_window()
    mu1, mu2 = _filter_valid(a, w), _filter_valid(b, w)
    s11 = _filter_valid(a * a, w) - mu1**2
    s22 = _filter_valid(b * b, w) - mu2**2
    s12 = _filter_valid(a * b, w) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(ssim_map.mean())


def ssim(img1: np.ndarray, img2: np.ndarray, crop_border: int = 0, test_y_channel: bool = False) -> float:
    """SSIM of Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255).

    Multi-channel images: the mean of the per-channel SSIMs.
    """
    _check(img1, img2)
    a = _prepare(img1, crop_border, test_y_channel)
    b = _prepare(img2, crop_border, test_y_channel)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs at least 11 x 11 pixels after cropping, got {a.shape[:2]}")
    if a.ndim == 2:
        return _ssim_single(a, b)
    return float(np.mean([_ssim_single(a[:, :, c], b[:, :, c]) for c in range(a.shape[2])]))
