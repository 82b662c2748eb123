"""Colour conversion: round trips per pixel format, agreement with FFmpeg's own conversion, and how
unspecified tags are resolved."""

from __future__ import annotations

import numpy as np
import pytest

from sr_deploy.video.colour import Colour, frame_to_rgb, output_colour, resolve_colour, rgb_to_frame
from tests.video.conftest import av


def smooth(height: int = 24, width: int = 32) -> np.ndarray:
    """``3 x H x W`` float32 RGB in [0.1, 0.9] that varies slowly (so chroma subsampling loses little)."""
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    return np.stack([0.1 + 0.8 * xx, 0.1 + 0.8 * yy, 0.5 + 0.4 * np.sin(3 * xx + 2 * yy)]).astype(np.float32)


@pytest.mark.parametrize(("pix_fmt", "colour", "tolerance"), [
    ("yuv444p", Colour(1, False, 1, 1), 1.5 / 219),
    ("yuv420p", Colour(6, False, 6, 6), 3 / 255),  # chroma at half resolution: a few codes on a smooth image
    ("yuv422p", Colour(5, True, 5, 6), 3 / 255),
    ("yuv420p10le", Colour(9, False, 9, 14), 3 / 255),
    ("yuv444p10le", Colour(9, True, 9, 14), 1.5 / 876),
    ("yuvj420p", Colour(6, True, 6, 6), 3 / 255),
    ("nv12", Colour(1, False, 1, 1), 12 / 255),  # reshuffled by FFmpeg, whose chroma filter is its own
    ("gray", Colour(1, False, 1, 1), None),
    ("bgr0", Colour(0, True, 1, 13), 0.5 / 255 + 1e-6),  # RGB: rounding only
    ("gbrp10le", Colour(0, True, 1, 13), 0.5 / 1023 + 1e-6),
])
def test_round_trip_within_the_format_precision(pix_fmt: str, colour: Colour, tolerance: float | None) -> None:
    rgb = smooth()
    frame = rgb_to_frame(rgb, pix_fmt, colour)
    assert frame.format.name == pix_fmt and (frame.width, frame.height) == (32, 24)
    assert (frame.colorspace, frame.color_range) == (colour.matrix, 2 if colour.full_range else 1)
    back = frame_to_rgb(frame, colour)
    assert back.shape == (3, 24, 32) and back.dtype == np.float32 and 0 <= back.min() and back.max() <= 1
    if tolerance is None:  # grey keeps the luma only: three equal channels
        assert np.array_equal(back[0], back[1]) and np.array_equal(back[1], back[2])
    else:
        assert np.abs(back - rgb).max() <= tolerance


@pytest.mark.parametrize(("colorspace", "matrix"), [("ITU709", 1), ("ITU601", 6)])
def test_matches_ffmpeg_conversion_for_444(colorspace: str, matrix: int) -> None:
    """FFmpeg's swscale, told the same matrix (limited range), gives the same 8-bit RGB within one code."""
    frame = rgb_to_frame(smooth(), "yuv444p", Colour(matrix, False, matrix, matrix))
    ours = np.round(frame_to_rgb(frame, Colour(matrix, False, matrix, matrix)) * 255).transpose(1, 2, 0)
    theirs = frame.reformat(format="rgb24", src_colorspace=colorspace).to_ndarray().astype(np.float64)
    assert np.abs(ours - theirs).max() <= 1


def test_unspecified_tags_resolved_as_players_do() -> None:
    assert resolve_colour("yuv420p", 32, 24, 2, 0, 2, 2) == Colour(6, False, 6, 6)
    assert resolve_colour("yuv420p", 1920, 1080, 2, 0, 2, 2) == Colour(1, False, 1, 1)
    assert resolve_colour("yuv420p10le", 3840, 2160, 2, 0, 9, 16) == Colour(9, False, 9, 16)
    assert resolve_colour("yuvj420p", 640, 480, 5, 0, 2, 2) == Colour(5, True, 5, 6)
    assert resolve_colour("bgr0", 32, 24, 2, 0, 2, 2) == Colour(0, True, 1, 13)
    with pytest.raises(ValueError, match="colour matrix 10 .* is not supported"):
        resolve_colour("yuv420p10le", 3840, 2160, 10, 1, 9, 14)
    assert av is not None


def test_the_output_colour_changes_only_across_rgb_and_yuv() -> None:
    yuv, rgb = Colour(5, True, 5, 6), Colour(0, True, 9, 14)
    assert output_colour(yuv, "yuv420p") == yuv  # same family: the source's tags
    assert output_colour(yuv, "gbrp10le") == Colour(0, True, 5, 6)  # RGB: matrix RGB, full range
    assert output_colour(rgb, "bgr0") == rgb
    assert output_colour(rgb, "yuv420p10le") == Colour(9, False, 9, 14)  # the matrix of its primaries, limited
    assert output_colour(Colour(0, True, 1, 13), "yuv444p").matrix == 1
