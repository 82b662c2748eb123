"""MATLAB-compatible bicubic imresize, checked against properties and an independent reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sr_deploy.data import imresize, modcrop


def keys_cubic(t: float) -> float:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def reference_resize_1d(signal: list[float], scale: float, antialiasing: bool = True) -> list[float]:
    """MATLAB's documented 1-D bicubic resize, one output sample at a time.

    Output sample i (1-based) sits at input coordinate u = i / scale + (1 - 1 / scale) / 2. Every
    input sample j contributes kernel(u - j); when shrinking with antialiasing the kernel is
    stretched: scale * kernel(scale * (u - j)). Weights are normalised to sum to one. Samples
    outside 1..n are mirrored (symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...).
    """
    n = len(signal)
    out = []
    stretch = scale if (scale < 1 and antialiasing) else 1.0
    for i in range(1, math.ceil(n * scale) + 1):
        u = i / scale + (1 - 1 / scale) / 2
        total, norm = 0.0, 0.0
        for j in range(math.floor(u) - 40, math.floor(u) + 41):
            w = stretch * keys_cubic(stretch * (u - j))
            if w == 0.0:
                continue
            k = (j - 1) % (2 * n)  # mirror into 0 .. n-1
            k = k if k < n else 2 * n - 1 - k
            total += w * signal[k]
            norm += w
        out.append(total / norm)
    return out


def reference_resize_2d(img: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    rows = np.array([reference_resize_1d(list(r), scale, antialiasing) for r in img])
    return np.array([reference_resize_1d(list(c), scale, antialiasing) for c in rows.T]).T


def test_hand_computed_x2_upscale_weights() -> None:
    # Upscaling x2, output samples sit 0.25 and 0.75 input pixels from their neighbours, so an
    # impulse spreads as kernel(1.75), kernel(1.25), kernel(0.75), kernel(0.25), mirrored:
    # kernel(0.25) = 1.5/64 - 2.5/16 + 1 = 0.8671875, kernel(0.75) = 0.2265625,
    # kernel(1.25) = -0.0703125, kernel(1.75) = -0.0234375.
    impulse = np.zeros((1, 12))
    impulse[0, 5] = 1.0  # input sample 6 (1-based): output samples 8..15 see it
    out = imresize(impulse, output_shape=(1, 24))[0]
    expected = np.zeros(24)
    expected[7:15] = [-0.0234375, -0.0703125, 0.2265625, 0.8671875, 0.8671875, 0.2265625, -0.0703125, -0.0234375]
    np.testing.assert_allclose(out, expected, atol=1e-15)


def test_hand_computed_half_downscale_weights() -> None:
    # Shrinking by 2 with antialiasing: kernel stretched to 0.5 * kernel(t / 2). Output sample i
    # sits at u = 2i - 0.5, i.e. 0.5, 1.5, 2.5 and 3.5 pixels from the inputs around it:
    # 0.5 * kernel(0.25) = 0.43359375, 0.5 * kernel(0.75) = 0.11328125,
    # 0.5 * kernel(1.25) = -0.03515625, 0.5 * kernel(1.75) = -0.01171875.
    ramp = np.arange(16, dtype=np.float64)[None, :] ** 2
    out = imresize(ramp, output_shape=(1, 8))[0]
    w = np.array([-0.01171875, -0.03515625, 0.11328125, 0.43359375])
    weights = np.concatenate([w, w[::-1]])
    i = 4  # output sample 5 (1-based) at u = 9.5: inputs 6..13 (1-based), fully interior
    assert out[i] == pytest.approx(float(weights @ ramp[0, 5:13]), abs=1e-12)


@pytest.mark.parametrize(
    ("shape", "scale", "antialiasing"),
    [((9, 13), 0.25, True), ((9, 13), 0.25, False), ((10, 7), 0.5, True), ((5, 6), 4.0, True),
     ((3, 4), 3.0, True), ((7, 5), 2.0, True)],
)
def test_matches_independent_reference(shape: tuple[int, int], scale: float, antialiasing: bool) -> None:
    img = np.random.default_rng(1).random(shape) * 255
    np.testing.assert_allclose(imresize(img, scale, antialiasing=antialiasing),
                               reference_resize_2d(img, scale, antialiasing), atol=1e-9)


@pytest.mark.parametrize(("shape", "scale", "expected"),
                         [((7, 9), 4.0, (28, 36)), ((10, 13), 0.25, (3, 4)), ((5, 6), 0.5, (3, 3)),
                          ((12, 16), 0.25, (3, 4)), ((3, 3), 8.0, (24, 24))])
def test_output_size_is_ceil_of_scaled_size(shape: tuple[int, int], scale: float, expected: tuple[int, int]) -> None:
    out = imresize(np.zeros((*shape, 3), np.uint8), scale)
    assert out.shape == (*expected, 3)
    assert expected == (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale))


def test_output_shape_argument() -> None:
    out = imresize(np.zeros((10, 20)), output_shape=(7, 31))
    assert out.shape == (7, 31)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="exactly one"):
        imresize(np.zeros((4, 4)), 2.0, output_shape=(8, 8))


@pytest.mark.parametrize("scale", [0.25, 0.5, 2.0, 3.0, 4.0])
def test_constant_image_stays_constant(scale: float) -> None:
    u8 = np.full((13, 11, 3), 173, np.uint8)
    np.testing.assert_array_equal(imresize(u8, scale), np.full_like(imresize(u8, scale), 173))
    f = np.full((13, 11), 0.3)
    np.testing.assert_allclose(imresize(f, scale), 0.3, atol=1e-12)


@pytest.mark.parametrize("scale", [0.25, 4.0])
def test_uint8_path_is_the_float_path_rounded(scale: float) -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    img[:, :, 0] = np.kron(rng.integers(0, 2, (5, 6)), np.ones((4, 4))) * 255  # sharp black/white blocks
    out = imresize(img, scale)
    assert out.dtype == np.uint8
    via_float = imresize(img.astype(np.float64), scale)
    assert via_float.dtype == np.float64
    assert via_float.min() < 0 or via_float.max() > 255  # overshoot exists, so clipping is exercised
    np.testing.assert_array_equal(out, np.clip(np.round(via_float), 0, 255).astype(np.uint8))


def test_antialiasing_changes_downscaling_only() -> None:
    img = np.random.default_rng(3).random((32, 32))
    assert not np.allclose(imresize(img, 0.25), imresize(img, 0.25, antialiasing=False))
    np.testing.assert_array_equal(imresize(img, 2.0), imresize(img, 2.0, antialiasing=False))
    # The antialiased result is smoother: less energy left from the white noise.
    assert imresize(img, 0.25).std() < imresize(img, 0.25, antialiasing=False).std()


def test_channels_are_resized_independently() -> None:
    img = np.random.default_rng(4).random((9, 10, 3))
    out = imresize(img, 0.5)
    for c in range(3):
        np.testing.assert_allclose(out[:, :, c], imresize(img[:, :, c], 0.5), atol=1e-12)


def test_other_dtypes_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8 or floating-point"):
        imresize(np.zeros((4, 4), np.uint16), 0.5)


def test_modcrop_keeps_the_top_left() -> None:
    img = np.arange(13 * 10 * 3).reshape(13, 10, 3)
    out = modcrop(img, 4)
    assert out.shape == (12, 8, 3)
    np.testing.assert_array_equal(out, img[:12, :8])
    assert modcrop(img[:, :, 0], 5).shape == (10, 10)
    assert modcrop(img[:12, :8], 4).shape == (12, 8, 3)  # already a multiple: unchanged
