"""``sr-deploy upscale`` with videos: a folder mixing images, videos and broken files gets the usual summary
and exit code; a job killed with SIGKILL in a real subprocess resumes with --resume, redoing at most one
segment, to the same frames as an uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from sr_deploy.cli import app
from sr_deploy.data.image_io import read_image, write_image
from sr_deploy.video.segments import MANIFEST, parts_folder
from tests.helpers import save_tiny_model
from tests.video.conftest import decoded_rgb, frame_times, make_clip, packet_hashes, stream_info

MODEL = ["--backend", "torch", "--no-tune"]


def test_folder_mixing_images_videos_and_broken_files(clips: dict[str, Path], tiny: object, tmp_path: Path) -> None:
    weights = save_tiny_model(tmp_path / "tiny.safetensors")
    d = tmp_path / "in"
    d.mkdir()
    write_image(d / "a.png", np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8))
    (d / "clip.mkv").write_bytes(clips["vfr"].read_bytes())
    (d / "clip-no-suffix").write_bytes(clips["cfr"].read_bytes())  # found by probing, not by its name
    (d / "broken.mp4").write_text("not a video")
    (d / "notes.txt").write_text("FFmpeg's tty demuxer reads text, but it is no video")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["upscale", str(d), "-o", f"{out}/", "--model", str(weights), *MODEL,
                                      "--segment-frames", "10"])
    assert result.exit_code == 1, result.output
    assert f"failed {d / 'broken.mp4'}: cannot upscale video {d / 'broken.mp4'}: FFmpeg cannot read" in result.output
    assert "3 written, 0 left as they were" in result.output and "1 failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "clip-no-suffix", "clip.mkv"]
    assert read_image(out / "a.png").shape == (36, 44, 3)
    assert frame_times(out / "clip.mkv") == frame_times(clips["vfr"])
    assert stream_info(out / "clip-no-suffix")["size"] == (128, 96)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sr_deploy.cli", "upscale", *args]


def test_killed_job_resumes_to_the_same_frames(tiny: object, tmp_path: Path) -> None:
    """``tiny`` holds torch at one thread in this process, as OMP_NUM_THREADS=1 does in the subprocesses, so
    the uninterrupted reference (run in-process: one process start less) computes the same way."""
    src = make_clip(tmp_path / "long.mp4", frames=48, width=64, height=48)
    weights = save_tiny_model(tmp_path / "tiny.safetensors")
    args = ["--model", str(weights), *MODEL, "--segment-frames", "4", "--frame-batch", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the CPUs are shared: one torch thread per job
    out = tmp_path / "out" / "up.mp4"
    manifest = parts_folder(out) / MANIFEST
    job = subprocess.Popen(_cli(str(src), "-o", str(out), *args), env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    finished_at_kill = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and job.poll() is None:
            try:
                finished_at_kill = len(json.loads(manifest.read_text())["segments"])
            except (OSError, ValueError, KeyError):
                finished_at_kill = 0
            if finished_at_kill >= 2:
                job.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        job.kill()
        job.wait()
    assert 2 <= finished_at_kill < 12, "the job was not caught mid-way"
    assert not out.exists()
    resumed = subprocess.run(_cli(str(src), "-o", str(out), *args, "--resume"), env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    frames_resumed = int(re.search(r"48 frames, .*?, (\d+) frames resumed", resumed.stderr).group(1))
    assert frames_resumed >= 4 * finished_at_kill  # at most the segment in progress was redone
    reference = tmp_path / "ref.mp4"
    plain = CliRunner().invoke(app, ["upscale", str(src), "-o", str(reference), *args])
    assert plain.exit_code == 0, plain.output
    assert frame_times(out) == frame_times(reference) == frame_times(src)
    assert packet_hashes(out, "audio") == packet_hashes(src, "audio")
    got, expected = decoded_rgb(out), decoded_rgb(reference)
    assert len(got) == len(expected) == 48
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in out.parent.iterdir()) == ["up.mp4"]
