"""Short real videos made with PyAV for the video tests, and the tiny model that upscales them.

:func:`make_clip` writes a few dozen small frames of a moving colour pattern (optionally with a sine-tone
audio stream, a subtitle stream, chapters, container metadata, rotation and colour tags), constant or
variable frame rate; the session fixtures below are the clips several test modules share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

av = pytest.importorskip("av")

from sr_deploy.backends.pytorch import TorchUpscaler  # noqa: E402
from tests.helpers import TINY_RANDOM, random_srresnet  # noqa: E402


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of a moving colour pattern, ``height x width x 3`` uint8 (smooth, so 4:2:0 keeps it)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([(xx * 7 + index * 5) % 256, (yy * 9 + index * 3) % 256,
                     ((xx + yy) * 4 + index * 11) % 256], axis=-1).astype(np.uint8)


def make_clip(path: Path, *, frames: int = 24, width: int = 32, height: int = 24, codec: str = "libx264",
              pix_fmt: str = "yuv420p", vfr: bool = False, audio: bool = True, subtitles: bool = False,
              chapters: bool = False, rotate: float | None = None, start: int = 0, colour: tuple[int, int, int, int]
              | None = None, options: dict[str, str] | None = None, container_options: dict[str, str] | None = None
              ) -> Path:
    """Write a clip: ``frames`` frames at 25 fps nominal (``vfr``: durations of 1, 2 and 3 ticks of 1/25 s in
    turn), pts from ``start``; ``colour``: (matrix, range, primaries, transfer) tags; audio: 8 kHz mono
    sine tone (AAC) covering the video; subtitles: two SubRip cues."""
    tb = Fraction(1, 25)
    with av.open(str(path), "w", options=container_options or {}) as out:
        video = out.add_stream(codec, rate=25, options=options or {})
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.time_base = video.codec_context.time_base = tb
        if colour is not None:
            cc = video.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = colour
        if rotate is not None:
            video.set_display_rotation(rotate)
        sound = out.add_stream("aac", rate=8000, layout="mono") if audio else None
        text = out.add_mux_stream("subrip", time_base=Fraction(1, 1000)) if subtitles else None
        out.metadata["title"] = "sr-deploy test clip"
        out.metadata["comment"] = "moving pattern"
        if chapters:
            out.set_chapters([
                {"id": 1, "start": 0, "end": 400, "time_base": Fraction(1, 1000), "metadata": {"title": "one"}},
                {"id": 2, "start": 400, "end": 800, "time_base": Fraction(1, 1000), "metadata": {"title": "two"}},
            ])
        pts = start
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24").reformat(format=pix_fmt)
            if colour is not None:
                frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc = colour
            frame.pts, frame.time_base = pts, tb
            pts += 1 + i % 3 if vfr else 1
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if text is not None:
            for k, cue in enumerate((b"first cue", b"second cue")):
                packet = av.Packet(cue)
                packet.stream, packet.time_base = text, Fraction(1, 1000)
                packet.pts = packet.dts = 100 + 300 * k
                packet.duration = 200
                out.mux(packet)
        if sound is not None:
            seconds = float((pts + 2) * tb)
            t = np.arange(int(8000 * seconds)) / 8000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 8000, k
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def frame_times(path: Path) -> list[Fraction]:
    """Every decoded video frame's timestamp in seconds, in presentation order."""
    with av.open(str(path)) as c:
        return [Fraction(f.pts) * f.time_base for f in c.decode(video=0)]


def packet_hashes(path: Path, kind: str) -> list[str]:
    """sha256 of every packet of the streams of ``kind`` (``audio``, ``subtitle``), in file order."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [hashlib.sha256(bytes(p)).hexdigest() for p in c.demux(streams) if p.size] if streams else []


def decoded_rgb(path: Path) -> list[np.ndarray]:
    """Every frame as ``H x W x 3`` uint8 RGB, as FFmpeg converts it (for RGB formats: exact)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def stream_info(path: Path) -> dict[str, Any]:
    """The first video stream's size, pixel format and colour tags from its codec parameters."""
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return {"size": (cc.width, cc.height), "pix_fmt": cc.pix_fmt, "codec": cc.name,
                "colour": (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc)}


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``cfr`` (MP4, H.264 + AAC, rotated 90 degrees, chapters, BT.709 tags), ``vfr`` (Matroska, variable
    frame rate starting at pts 3, AAC + SubRip), ``tenbit`` (Matroska, HEVC 4:2:0 10-bit, BT.2020 tags),
    ``rgb`` (Matroska, FFV1 ``bgr0``: lossless RGB)."""
    d = tmp_path_factory.mktemp("clips")
    return {
        "cfr": make_clip(d / "cfr.mp4", rotate=90, chapters=True, colour=(1, 1, 1, 1)),
        "vfr": make_clip(d / "vfr.mkv", vfr=True, start=3, subtitles=True),
        "tenbit": make_clip(d / "tenbit.mkv", frames=12, codec="libx265", pix_fmt="yuv420p10le",
                            colour=(9, 1, 9, 14), audio=False, options={"x265-params": "log-level=error"}),
        "rgb": make_clip(d / "rgb.mkv", frames=12, codec="ffv1", pix_fmt="bgr0", audio=False),
    }


@pytest.fixture(scope="module")
def tiny() -> Iterator[TorchUpscaler]:
    """SRResNet(8 features, 1 block) x4 with random weights on torch CPU, run on one thread while a video test
    module uses it (restored after it): the CPUs are shared (with the decoder and encoder threads too), and on
    a loaded 2-core machine two torch threads waiting for each other made a 32 x 24 frame 40 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TorchUpscaler(random_srresnet(TINY_RANDOM), TINY_RANDOM)
    torch.set_num_threads(threads)
