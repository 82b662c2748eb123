"""Encoder choices: defaults by bit depth and container, kept chroma layout, and refusals that name the limit."""

from __future__ import annotations

import pytest

from sr_deploy.video.options import VideoOptions, choose_encoding
from tests.video.conftest import av


def test_defaults() -> None:
    assert av is not None
    h264 = choose_encoding(VideoOptions(), "yuv420p", 8, 128, 96, "mp4")
    assert (h264.codec, h264.pix_fmt, h264.options) == ("libx264", "yuv420p", {"crf": "18", "preset": "medium"})
    hevc = choose_encoding(VideoOptions(), "yuv420p10le", 10, 128, 96, "matroska")
    assert (hevc.codec, hevc.pix_fmt, hevc.options["crf"]) == ("libx265", "yuv420p10le", "20")
    assert choose_encoding(VideoOptions(), "yuv444p", 8, 128, 96, "mp4").pix_fmt == "yuv444p"
    assert choose_encoding(VideoOptions(), "yuv420p", 8, 128, 96, "webm").codec == "libvpx-vp9"
    assert choose_encoding(VideoOptions(codec="ffv1"), "bgr0", 8, 128, 96, "matroska").options == {}
    av1 = choose_encoding(VideoOptions(codec="libsvtav1", crf=35, preset="10"), "yuv420p10le", 10, 128, 96, "mp4")
    assert (av1.pix_fmt, av1.options) == ("yuv420p10le", {"crf": "35", "preset": "10"})


@pytest.mark.parametrize(("options", "size", "muxer", "message"), [
    (VideoOptions(codec="nope"), (128, 96), "mp4", "no video encoder named 'nope'"),
    (VideoOptions(codec="libx264", pix_fmt="gbrp"), (128, 96), "mp4", "libx264 does not encode gbrp"),
    (VideoOptions(codec="libx264"), (128, 96), "webm", "the webm container cannot hold libx264 video"),
    (VideoOptions(), (130, 99), "mp4", "yuv420p needs an even width and height, the output is 130x99"),
    (VideoOptions(codec="libsvtav1"), (16400, 96), "mp4", "beyond libsvtav1's limit of 16384x16384"),
    (VideoOptions(codec="ffv1", crf=10), (128, 96), "matroska", "ffv1 is lossless and takes no CRF"),
    (VideoOptions(crf=60), (128, 96), "mp4", "libx264 takes a CRF from 0 to 51, got 60"),  # x264 clamped it
    (VideoOptions(codec="libvpx-vp9", crf=99), (128, 96), "webm", "libvpx-vp9 takes a CRF from 0 to 63, got 99"),
    (VideoOptions(preset="blah"), (128, 96), "mp4", "libx264 refuses the options crf=18, preset=blah"),
    (VideoOptions(codec="mpeg4", crf=2), (128, 96), "mp4", r"mpeg4 does not take crf \(given: crf=2\)"),  # ignored
])
def test_refusals_name_the_problem(options: VideoOptions, size: tuple[int, int], muxer: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        choose_encoding(options, "yuv420p", 8, size[0], size[1], muxer)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="decode_errors must be one of"):
        VideoOptions(decode_errors="ignore")
    with pytest.raises(ValueError, match="segment_frames must be at least 1"):
        VideoOptions(segment_frames=0)
