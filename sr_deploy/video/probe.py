"""What a video file holds, from its container and its first decoded frame (PyAV/FFmpeg).

A file is a video when FFmpeg demuxes it and it has a video stream that is not a still picture: the
decision comes from probing the container, never from the file name alone. Image demuxers
(``image2``, ``*_pipe``), animated-image formats (GIF, APNG, WebP: the image path refuses those
with its own message), text shown as video (``tty``) and cover art (``attached_pic``) do not count.

:func:`probe_video` also decodes the first frame, so an undecodable stream is refused before any
work starts, and it reads what only frames carry: the pixel format, the colour tags and the display
matrix (rotation).
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from sr_deploy.data.image_io import printable

#: Output file suffixes -> FFmpeg muxer names (what ``-o NAME.ext`` writes). Inputs are recognised by probing.
MUXERS = {
    ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi",
    ".ts": "mpegts", ".m2ts": "mpegts", ".mts": "mpegts", ".nut": "nut", ".flv": "flv", ".mpg": "mpeg",
    ".mpeg": "mpeg", ".ogv": "ogg", ".3gp": "3gp",
}
VIDEO_SUFFIXES = tuple(MUXERS)
#: Containers that store one frame per tick of 1/frame rate, with no timestamps of their own (AVI): the video is
#: encoded in that time base (a finer one is read back as hundreds of frames per second)
FRAME_RATE_MUXERS = frozenset({"avi"})

_STILL_DEMUXERS = {"image2", "tty", "gif", "apng", "webp", "jpegxl_anim"}


class VideoError(ValueError):
    """A video cannot be upscaled; the message names the file and the cause."""

    def __init__(self, path: str | os.PathLike[str], cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"cannot upscale video {printable(self.path)}: {cause}")


@dataclass(frozen=True)
class VideoInfo:
    """The video stream of a file (``index`` in the container) and what its first frame says.

    ``time_base``: seconds per pts tick; ``start_pts``: the first frame's pts; ``frames``: the count the
    container announces (0 when it does not say); ``colorspace``/``color_range``/``color_primaries``/
    ``color_trc``: FFmpeg's enum values from the first frame (2/0/2/2: unspecified); ``display_matrix``:
    the 9 int32 of the rotation side data (None: upright); ``others``: the other streams, as
    ``"#i type codec"``.
    """

    path: Path
    container: str
    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    start_pts: int
    frames: int
    duration_s: float | None
    rate: Fraction | None
    colorspace: int
    color_range: int
    color_primaries: int
    color_trc: int
    display_matrix: tuple[int, ...] | None
    others: tuple[str, ...]


def _open(path: Path) -> Any:
    import av

    try:
        return av.open(str(path), "r")
    except FileNotFoundError:
        raise VideoError(path, "no such file") from None
    except PermissionError:
        raise VideoError(path, "permission denied") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(path, f"FFmpeg cannot read it as a container ({exc})") from None


def _moving_video_stream(container: Any) -> Any | None:
    import av

    if container.format.name in _STILL_DEMUXERS or container.format.name.endswith("_pipe"):
        return None
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether FFmpeg demuxes ``path`` and finds a moving-picture video stream in it (see the module
    docstring); False for anything that cannot be opened."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size == 0:
            return False
        with _open(p) as container:
            return _moving_video_stream(container) is not None
    except (VideoError, OSError):
        return False


def _display_matrix(frame: Any, stream: Any) -> tuple[int, ...] | None:
    for side in frame.side_data:
        if side.type.name == "DISPLAYMATRIX":
            data = bytes(side)
            if len(data) == 36:
                return struct.unpack("<9i", data)
    rotate = stream.metadata.get("rotate")
    if rotate:
        angle = -float(rotate)  # the tag turns clockwise, the matrix counter-clockwise (as FFmpeg reads it)
        c, s = round(math.cos(math.radians(angle)) * 65536), round(math.sin(math.radians(angle)) * 65536)
        return (c, -s, 0, s, c, 0, 0, 0, 1 << 30)
    return None


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Open ``path``, find its video stream and decode its first frame.

    Raises :class:`VideoError` (naming the file) when it cannot be opened, has no moving-picture video
    stream, or its first frame cannot be decoded (an undecodable or truncated stream).
    """
    import av

    p = Path(path)
    if p.is_file() and p.stat().st_size == 0:
        raise VideoError(p, "the file is empty")
    with _open(p) as container:
        stream = _moving_video_stream(container)
        others = tuple(f"#{s.index} {s.type} {s.codec_context.name if s.codec_context else '?'}"
                       for s in container.streams if stream is None or s.index != stream.index)
        if stream is None:
            found = ", ".join(others) or "none"
            raise VideoError(p, f"no video stream (streams: {found})")
        try:
            frame = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(p, f"the video stream cannot be decoded: {exc}") from None
        if frame is None:
            raise VideoError(p, "the video stream has no decodable frame (truncated or empty)")
        fmt = frame.format
        duration = float(container.duration) / av.time_base if container.duration else None
        return VideoInfo(
            path=p, container=container.format.name, index=stream.index, codec=stream.codec_context.name,
            width=frame.width, height=frame.height, pix_fmt=fmt.name,
            bit_depth=max(c.bits for c in fmt.components), time_base=stream.time_base,
            start_pts=frame.pts if frame.pts is not None else 0, frames=stream.frames or 0,
            duration_s=duration, rate=stream.average_rate, colorspace=int(frame.colorspace),
            color_range=int(frame.color_range), color_primaries=int(frame.color_primaries),
            color_trc=int(frame.color_trc), display_matrix=_display_matrix(frame, stream), others=others,
        )
