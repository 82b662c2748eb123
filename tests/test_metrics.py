"""PSNR / SSIM / Y conversion, checked against formulas and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity

from sr_deploy.data import imresize
from sr_deploy.metrics import psnr, rgb_to_y, ssim


def noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, img.shape)
    return np.clip(np.round(img + noise), 0, 255).astype(np.uint8)


def test_psnr_of_identical_images_is_inf() -> None:
    img = skimage.data.camera()
    assert psnr(img, img.copy()) == math.inf
    assert psnr(img, img, test_y_channel=True) == math.inf


def test_psnr_known_mse() -> None:
    a = np.full((8, 10), 100, np.uint8)
    b = a.copy()
    b[:4] = 95  # below a: an unsigned subtraction would wrap around
    mse = 25 * 40 / 80
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-12)
    assert psnr(b, a) == psnr(a, b)
    # same value on the 0..255 float scale
    assert psnr(a.astype(np.float32), b.astype(np.float64)) == pytest.approx(psnr(a, b), abs=1e-12)


def test_rgb_to_y_is_bt601() -> None:
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [12, 200, 77]]],
                      dtype=np.uint8)
    expected = [16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255 for r, g, b in pixels[0].tolist()]
    np.testing.assert_allclose(rgb_to_y(pixels, round_to_int=False)[0], expected, atol=1e-12)
    np.testing.assert_array_equal(rgb_to_y(pixels)[0], np.round(expected))
    assert expected[0] == 16 and expected[1] == pytest.approx(235)
    with pytest.raises(ValueError, match="H x W x 3"):
        rgb_to_y(pixels[:, :, :2])


def test_y_channel_metrics_use_rounded_y() -> None:
    a = skimage.data.astronaut()
    b = noisy(a, 6)
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    assert psnr(a, b, test_y_channel=True) == pytest.approx(psnr(ya, yb), abs=1e-12)
    assert ssim(a, b, test_y_channel=True) == pytest.approx(ssim(ya, yb), abs=1e-12)


def test_grey_images_are_measured_on_their_own_channel() -> None:
    a = skimage.data.camera()
    b = noisy(a, 8)
    assert psnr(a[:, :, None], b[:, :, None], test_y_channel=True) == pytest.approx(psnr(a, b), abs=1e-12)
    assert ssim(a[:, :, None], b[:, :, None], test_y_channel=True) == pytest.approx(ssim(a, b), abs=1e-12)


def test_ssim_identical_symmetric_and_below_one() -> None:
    a = skimage.data.camera()
    b = noisy(a, 15)
    assert ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-12)
    assert 0 < ssim(a, b) < 0.9
    assert ssim(a, noisy(a, 30)) < ssim(a, b)  # more noise, lower SSIM


@pytest.mark.parametrize("degradation", ["bicubic", "noise"])
def test_ssim_agrees_with_scikit_image(degradation: str) -> None:
    # scikit-image with Wang et al.'s settings (Gaussian 11x11 window, sigma 1.5, population
    # covariance, L = 255) filters the whole image and drops the 5-pixel border where the window
    # does not fit, which is exactly our 'valid' filtering: the two agree to rounding error.
    hr = skimage.data.camera()
    sr = imresize(imresize(hr, 0.25), 4.0) if degradation == "bicubic" else noisy(hr, 20)
    ours = ssim(sr, hr)
    theirs = structural_similarity(sr.astype(np.float64), hr.astype(np.float64), gaussian_weights=True,
                                   sigma=1.5, use_sample_covariance=False, data_range=255)
    assert ours == pytest.approx(theirs, abs=1e-6)  # the task asks for 1e-3; they agree far closer


def test_ssim_of_colour_is_the_mean_over_channels() -> None:
    a = skimage.data.astronaut()[:96, :128]
    b = noisy(a, 10)
    assert ssim(a, b) == pytest.approx(np.mean([ssim(a[:, :, c], b[:, :, c]) for c in range(3)]), abs=1e-12)


def test_crop_border() -> None:
    a = skimage.data.camera()[:64, :80]
    b = a.copy()
    b[:3] = 255 - b[:3]  # differences only in the top 3 rows
    b[:, -2:] = 0  # and the right 2 columns
    assert psnr(a, b) < 20
    assert psnr(a, b, crop_border=2) < 30
    assert psnr(a, b, crop_border=3) == math.inf
    assert ssim(a, b, crop_border=3) == pytest.approx(1.0, abs=1e-12)
    c = noisy(a, 10)
    assert psnr(a, c, crop_border=4) == pytest.approx(psnr(a[4:-4, 4:-4], c[4:-4, 4:-4]), abs=1e-12)
    assert ssim(a, c, crop_border=4) == pytest.approx(ssim(a[4:-4, 4:-4], c[4:-4, 4:-4]), abs=1e-12)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(np.zeros((16, 16, 3)), np.zeros((16, 16)))
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim(np.zeros((20, 20)), np.zeros((20, 20)), crop_border=5)
