"""upscale_video on real clips made with PyAV: every frame's timestamp, the frame count, audio and subtitle
packets copied bit-exact, output size, colour tags, rotation, chapters and metadata; 10-bit stays 10-bit;
with a lossless codec each output frame is exactly the model's output for the decoded input frame; bad
input gets a clear error before any work."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.data.image_io import to_uint
from sr_deploy.runtime.images import upscale_image
from sr_deploy.runtime.tiling import plan_tiles, upscale_tiled
from sr_deploy.video import VideoError, VideoOptions, probe_video, upscale_video
from sr_deploy.video.colour import frame_to_rgb, resolve_colour
from sr_deploy.video.segments import parts_folder
from tests.video.conftest import av, decoded_rgb, frame_times, make_clip, packet_hashes, stream_info


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def test_cfr_mp4_keeps_timestamps_audio_rotation_chapters_metadata(clips: dict[str, Path], tiny: TorchUpscaler,
                                                                   tmp_path: Path) -> None:
    src, out = clips["cfr"], tmp_path / "up.mp4"
    result = upscale_video(tiny, src, out, VideoOptions(segment_frames=10))
    assert (result.frames, result.width, result.height) == (24, 128, 96)
    assert frame_times(out) == frame_times(src)
    audio = packet_hashes(src, "audio")
    assert len(audio) > 5 and packet_hashes(out, "audio") == audio
    assert stream_info(out) == {"size": (128, 96), "pix_fmt": "yuv420p", "codec": "h264", "colour": (1, 1, 1, 1)}
    assert probe_video(out).display_matrix == probe_video(src).display_matrix is not None
    with av.open(str(src)) as a, av.open(str(out)) as b:
        def chapters(c: object) -> list[tuple[str, Fraction, Fraction]]:
            return [(ch["metadata"]["title"], ch["start"] * ch["time_base"], ch["end"] * ch["time_base"])
                    for ch in c.chapters()]  # type: ignore[attr-defined]

        assert chapters(b) == chapters(a) and len(chapters(a)) == 2
        assert (b.metadata["title"], b.metadata["comment"]) == ("sr-deploy test clip", "moving pattern")
        assert abs(b.duration - a.duration) <= av.time_base / 25  # within one frame
    assert _leftovers(tmp_path, "up.mp4") == []  # no parts folder, no temporary file


def test_vfr_mkv_keeps_every_timestamp_start_offset_and_streams(clips: dict[str, Path], tiny: TorchUpscaler,
                                                                tmp_path: Path) -> None:
    src, out = clips["vfr"], tmp_path / "up.mkv"
    times = frame_times(src)
    assert times[0] > 0 and len({b - a for a, b in zip(times, times[1:], strict=False)}) == 3  # VFR, offset
    result = upscale_video(tiny, src, out, VideoOptions(segment_frames=7, batch=3))
    assert result.frames == 24 and frame_times(out) == times
    assert packet_hashes(out, "audio") == packet_hashes(src, "audio")
    subtitles = packet_hashes(src, "subtitle")
    assert len(subtitles) == 2 and packet_hashes(out, "subtitle") == subtitles
    # unspecified tags of a 32x24 source: BT.601 limited, as players guess; the output says so explicitly
    assert stream_info(out)["colour"] == (6, 1, 6, 6)


def test_ten_bit_source_stays_ten_bit_hevc_with_its_colour(clips: dict[str, Path], tiny: TorchUpscaler,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "up.mkv"
    result = upscale_video(tiny, clips["tenbit"], out)
    assert result.encoding.codec == "libx265"
    assert stream_info(out) == {"size": (128, 96), "pix_fmt": "yuv420p10le", "codec": "hevc",
                                "colour": (9, 1, 9, 14)}
    assert len(frame_times(out)) == 12


def test_ten_bit_source_stays_ten_bit_av1_in_mp4(clips: dict[str, Path], tiny: TorchUpscaler, tmp_path: Path) -> None:
    out = tmp_path / "up.mp4"
    upscale_video(tiny, clips["tenbit"], out, VideoOptions(codec="libsvtav1", preset="12"))
    info = stream_info(out)
    assert info.pop("codec") in ("av1", "libdav1d")  # the name of the decoder FFmpeg picks
    assert info == {"size": (128, 96), "pix_fmt": "yuv420p10le", "colour": (9, 1, 9, 14)}
    assert frame_times(out) == frame_times(clips["tenbit"])


def test_lossless_rgb_output_equals_upscale_image_of_each_decoded_frame(clips: dict[str, Path],
                                                                        tiny: TorchUpscaler, tmp_path: Path) -> None:
    out = tmp_path / "up.mkv"
    upscale_video(tiny, clips["rgb"], out, VideoOptions(codec="ffv1", segment_frames=5, batch=4))
    src, got = decoded_rgb(clips["rgb"]), decoded_rgb(out)
    assert len(got) == len(src) == 12
    for frame, upscaled in zip(src, got, strict=True):
        np.testing.assert_array_equal(upscaled, upscale_image(tiny, frame))


def test_lossless_from_yuv_equals_the_tiled_model_on_the_converted_frame(clips: dict[str, Path],
                                                                          tiny: TorchUpscaler, tmp_path: Path) -> None:
    """The float32 RGB of each Y'CbCr frame goes to the model unrounded; with an RGB lossless output each
    frame is the model's output rounded once, tiled frames included (tile 8: several windows)."""
    src, out = clips["vfr"], tmp_path / "up.mkv"
    upscale_video(tiny, src, out, VideoOptions(codec="ffv1", pix_fmt="bgr0", tile=8))
    info = probe_video(src)
    colour = resolve_colour(info.pix_fmt, info.width, info.height, info.colorspace, info.color_range,
                            info.color_primaries, info.color_trc)
    plan = plan_tiles(tiny, info.height, info.width, tile=8)
    assert plan.count > 1
    with av.open(str(src)) as c:
        expected = [to_uint(upscale_tiled(tiny, frame_to_rgb(f, colour), plan).transpose(1, 2, 0))
                    for f in c.decode(video=0)]
    got = decoded_rgb(out)
    assert len(got) == len(expected) == 24
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert frame_times(out) == frame_times(src)


def test_size_beyond_the_codec_limit_is_refused_before_any_work(tiny: TorchUpscaler, tmp_path: Path) -> None:
    src = make_clip(tmp_path / "wide.mkv", frames=2, width=4100, height=16, audio=False)
    out = tmp_path / "out" / "up.mp4"
    with pytest.raises(VideoError, match=r"wide.mkv: the upscaled size 16400x64 is beyond libx264's limit of "
                                         r"16384x16384 \(x264 accepts at most 16384 pixels per side\)"):
        upscale_video(tiny, src, out)
    assert not out.parent.exists() and not parts_folder(out).exists()


def test_bad_files_get_clear_errors(clips: dict[str, Path], tiny: TorchUpscaler, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty.mp4: the file is empty"):
        upscale_video(tiny, empty, tmp_path / "o1.mp4")
    truncated = tmp_path / "truncated.mp4"  # MP4 keeps its index at the end: half a file has none
    data = clips["cfr"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="truncated.mp4: FFmpeg cannot read it as a container"):
        upscale_video(tiny, truncated, tmp_path / "o2.mp4")
    front = make_clip(tmp_path / "front.mp4", audio=False, container_options={"movflags": "faststart"})
    data = front.read_bytes()
    front.write_bytes(data[: len(data) * 2 // 3])  # the index is at the front: it opens, frames are missing
    result = upscale_video(tiny, front, tmp_path / "o0.mp4")
    assert 0 < result.frames < 24
    assert f"the container announced 24 frames, {result.frames} were decoded (a truncated file?)" in result.notes
    (tmp_path / "o0.mp4").unlink()
    sound = tmp_path / "sound.m4a"
    with av.open(str(sound), "w") as c:
        stream = c.add_stream("aac", rate=8000, layout="mono")
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 8000, 0
        c.mux(stream.encode(chunk))
        c.mux(stream.encode(None))
    with pytest.raises(VideoError, match=r"sound.m4a: no video stream \(streams: #0 audio aac\)"):
        upscale_video(tiny, sound, tmp_path / "o3.mp4")
    with pytest.raises(VideoError, match="no video container is known for the output 'o4.png'"):
        upscale_video(tiny, clips["cfr"], tmp_path / "o4.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4", "front.mp4", "sound.m4a", "truncated.mp4"]


def _corrupt_clip(path: Path) -> tuple[Path, list[Fraction]]:
    """An MJPEG clip (12 frames) whose 6th frame's Huffman table is overwritten: FFmpeg rejects the frame."""
    make_clip(path, frames=12, codec="mjpeg", pix_fmt="yuvj420p", audio=False)
    times = frame_times(path)
    with av.open(str(path)) as c:
        packets = [bytes(p) for p in c.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    at = data.find(packets[5]) + packets[5].index(b"\xff\xc4") + 4  # after the DHT marker and its length
    data[at : at + 60] = bytes((i * 37) % 256 for i in range(60))
    path.write_bytes(bytes(data))
    return path, times


def test_corrupt_frame_stops_naming_it_or_is_skipped(tiny: TorchUpscaler, tmp_path: Path) -> None:
    src, times = _corrupt_clip(tmp_path / "corrupt.mkv")
    out = tmp_path / "out" / "up.mkv"
    with pytest.raises(VideoError, match=r"corrupt.mkv: the frame after output frame 4 \(packet at 0.200 s\): "
                                         r"decoder error: .*decode_errors='skip'"):
        upscale_video(tiny, src, out, VideoOptions(segment_frames=4))
    assert not out.exists()
    result = upscale_video(tiny, src, out, VideoOptions(segment_frames=4, decode_errors="skip"))
    assert result.frames == 11 and len(result.skipped) == 1 and "packet at 0.200 s" in result.skipped[0]
    assert frame_times(out) == times[:5] + times[6:]
    assert stream_info(out)["colour"][1] == 2  # yuvj: full range, kept


def test_rgb_and_yuv_outputs_are_tagged_for_what_they_hold(clips: dict[str, Path], tiny: TorchUpscaler,
                                                           tmp_path: Path) -> None:
    """Crossing between RGB and Y'CbCr: an RGB output is tagged RGB, full range (a decoder reads its planes as
    Y'CbCr otherwise), and a Y'CbCr output of an RGB source gets a Y'CbCr matrix (it crashed on the RGB one)."""
    reference = tmp_path / "ref.mkv"  # lossless RGB: the model's output rounded once
    upscale_video(tiny, clips["cfr"], reference, VideoOptions(codec="ffv1", pix_fmt="bgr0"))
    rgb = upscale_video(tiny, clips["cfr"], tmp_path / "rgb.mkv", VideoOptions(codec="libx264rgb", crf=0))
    assert stream_info(rgb.destination)["colour"][:2] == (0, 2) and rgb.colour.matrix == 0
    for got, want in zip(decoded_rgb(rgb.destination), decoded_rgb(reference), strict=True):
        np.testing.assert_array_equal(got, want)  # lossless, read as RGB
    src = tmp_path / "rgb-source.mkv"
    upscale_video(tiny, clips["rgb"], src, VideoOptions(codec="ffv1", pix_fmt="bgr0"))  # an RGB source
    yuv = upscale_video(tiny, src, tmp_path / "yuv.mkv", VideoOptions(codec="libx264", crf=0, pix_fmt="yuv444p"))
    assert stream_info(yuv.destination)["colour"] == (1, 1, 1, 13)  # BT.709 limited; primaries, transfer kept
    lossless = tmp_path / "lossless.mkv"
    upscale_video(tiny, src, lossless, VideoOptions(codec="ffv1", pix_fmt="bgr0"))
    for got, want in zip(decoded_rgb(yuv.destination), decoded_rgb(lossless), strict=True):
        error = np.abs(got.astype(np.int16) - want)  # 8-bit Y'CbCr rounding only
        assert error.max() <= 3 and error.mean() <= 1.0


def test_avi_gets_one_tick_per_frame(tiny: TorchUpscaler, tmp_path: Path) -> None:
    """AVI stores one frame per tick of its time base, in decode order: encoded in the source's fine time base
    with B-frames it was read back at 600 fps with 169 frames announced for 8 and frames out of order."""
    src = make_clip(tmp_path / "src.mp4", frames=24, audio=False)
    out = upscale_video(tiny, src, tmp_path / "up.avi", VideoOptions(segment_frames=10)).destination
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == 25 and stream.frames == 24 and stream.time_base == Fraction(1, 25)
    times = frame_times(out)  # AVI stores no timestamps: read back one frame per tick, in order
    assert len(times) == 24 and all(b - a == Fraction(1, 25) for a, b in zip(times, times[1:], strict=False))
