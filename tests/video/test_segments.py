"""Segments and resume: decode timestamps for containers that store none, the manifest and its key, the
display matrix, and a job stopped by Ctrl-C (KeyboardInterrupt in the model thread) that resumes to the
same frames as an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.video import VideoOptions, upscale_video
from sr_deploy.video.segments import (
    MANIFEST,
    Segment,
    SegmentStore,
    decode_timestamps,
    parts_folder,
    scaled_display_matrix,
)
from tests.helpers import TINY_RANDOM, random_srresnet
from tests.video.conftest import decoded_rgb, frame_times, packet_hashes


def test_decode_timestamps_are_increasing_and_never_after_their_pts() -> None:
    for pts in ([0, 280, 120, 40, 240, 360, 480], [0, 3, 1, 2], [5], [0, 1, 2], [10, 40, 20, 30, 70, 50, 60]):
        dts = decode_timestamps(pts)
        assert all(a < b for a, b in zip(dts, dts[1:], strict=False))
        assert all(d <= p for d, p in zip(dts, pts, strict=True))
    assert decode_timestamps([0, 280, 120, 40, 240]) == [-2, -1, 0, 40, 120]


def test_display_matrix_keeps_rotation_and_scales_translation() -> None:
    rotate90 = (0, -65536, 0, 65536, 0, 0, 10, 20, 1 << 30)
    assert scaled_display_matrix(rotate90, 4) == [0, -65536, 0, 65536, 0, 0, 40, 80, 1 << 30]


def test_store_resumes_only_with_the_same_key(tmp_path: Path) -> None:
    out = tmp_path / "v.mkv"
    store = SegmentStore(out, {"model": "a"}, resume=False, muxer="matroska")
    (store.folder / "seg-000000.mkv").write_bytes(b"x")
    segment = Segment("seg-000000.mkv", 0, 4, 0, 3)
    store.finished(segment)
    assert json.loads((parts_folder(out) / MANIFEST).read_text())["segments"][0]["count"] == 4
    again = SegmentStore(out, {"model": "a"}, resume=True, muxer="matroska")
    assert again.segments == [segment] and (again.frames_done, again.last_pts) == (4, 3)
    with pytest.raises(ValueError, match=r"made with other settings \(model\): run without resume"):
        SegmentStore(out, {"model": "b"}, resume=True, muxer="matroska")
    fresh = SegmentStore(out, {"model": "b"}, resume=False, muxer="matroska")
    assert fresh.segments == [] and not (fresh.folder / "seg-000000.mkv").exists()


def test_ctrl_c_keeps_finished_segments_and_resume_gives_the_same_frames(clips: dict[str, Path],
                                                                         tiny: TorchUpscaler, tmp_path: Path) -> None:
    src = clips["vfr"]
    options = VideoOptions(segment_frames=5, batch=2)
    reference = tmp_path / "ref.mkv"
    upscale_video(tiny, src, reference, options)

    out = tmp_path / "out" / "up.mkv"

    def interrupt(done: int, total: int) -> None:
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(tiny, src, out, options, on_progress=interrupt)
    assert not out.exists()  # nothing looks like a finished file
    manifest = json.loads((parts_folder(out) / MANIFEST).read_text())
    kept = sum(s["count"] for s in manifest["segments"])
    assert 5 <= kept <= 12 and kept % 5 == 0
    assert sorted(p.name for p in parts_folder(out).iterdir()) == [MANIFEST] + [
        s["file"] for s in manifest["segments"]]  # the segment in progress was discarded
    result = upscale_video(tiny, src, out, VideoOptions(segment_frames=5, batch=2, resume=True))
    assert result.resumed == kept and result.stats.frames == 24 - kept and result.frames == 24
    assert frame_times(out) == frame_times(reference) == frame_times(src)
    assert packet_hashes(out, "audio") == packet_hashes(src, "audio")
    for a, b in zip(decoded_rgb(out), decoded_rgb(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not parts_folder(out).exists()


def test_resume_refuses_other_weights_of_the_same_architecture(clips: dict[str, Path], tiny: TorchUpscaler,
                                                               tmp_path: Path) -> None:
    """The resume key held the descriptor only: another checkpoint of the same architecture resumed the job and
    the video mixed two models."""
    out = tmp_path / "up.mkv"

    def interrupt(done: int, total: int) -> None:
        if done >= 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(tiny, clips["vfr"], out, VideoOptions(segment_frames=5), on_progress=interrupt)
    other = TorchUpscaler(random_srresnet(TINY_RANDOM, seed=7), TINY_RANDOM)
    assert other.descriptor == tiny.descriptor and other.weights_digest() != tiny.weights_digest()
    with pytest.raises(ValueError, match=r"made with other settings \(model\)"):
        upscale_video(other, clips["vfr"], out, VideoOptions(segment_frames=5, resume=True))
