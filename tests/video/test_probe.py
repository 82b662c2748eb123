"""Probing: what counts as a video (by content, not name) and what the probe reads from the first frame."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from sr_deploy.data.image_io import write_image
from sr_deploy.video import is_video, probe_video
from tests.video.conftest import av


def test_probe_reads_stream_frame_and_rotation(clips: dict[str, Path]) -> None:
    info = probe_video(clips["cfr"])
    assert (info.width, info.height, info.pix_fmt, info.bit_depth, info.codec) == (32, 24, "yuv420p", 8, "h264")
    assert (info.colorspace, info.color_range, info.frames, info.start_pts) == (1, 1, 24, 0)
    assert info.display_matrix is not None and info.others[0] == "#1 audio aac"
    tenbit = probe_video(clips["tenbit"])
    assert (tenbit.pix_fmt, tenbit.bit_depth, tenbit.colorspace, tenbit.color_trc) == ("yuv420p10le", 10, 9, 14)
    vfr = probe_video(clips["vfr"])
    assert vfr.start_pts * vfr.time_base == Fraction(3, 25) and vfr.display_matrix is None


def test_is_video_by_content(clips: dict[str, Path], tmp_path: Path) -> None:
    renamed = tmp_path / "holiday.dat"
    renamed.write_bytes(clips["vfr"].read_bytes())
    write_image(tmp_path / "still.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("text that FFmpeg's tty demuxer would show as video")
    (tmp_path / "fake.mp4").write_text("not a video")
    gif = tmp_path / "anim.gif"
    with av.open(str(gif), "w") as c:
        s = c.add_stream("gif", rate=5)
        s.width, s.height, s.pix_fmt = 8, 8, "rgb8"
        for i in range(3):
            f = av.VideoFrame.from_ndarray(np.full((8, 8, 3), 40 * i, np.uint8), format="rgb24").reformat(
                format="rgb8")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    assert is_video(renamed) and is_video(clips["cfr"])
    for name in ("still.png", "notes.txt", "fake.mp4", "anim.gif", "missing.mkv"):
        assert not is_video(tmp_path / name), name
