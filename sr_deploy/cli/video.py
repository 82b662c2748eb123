"""The video side of ``sr-deploy upscale``: its options and the per-file handler that sends video inputs
(recognised by probing the file) to :func:`sr_deploy.upscale_video`, with a progress line per video
showing frames, fps and the time left."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import MofNCompleteColumn, Progress, ProgressColumn, TextColumn

import sr_deploy as sr
from sr_deploy.data.image_io import IMAGE_SUFFIXES
from sr_deploy.video import VIDEO_SUFFIXES, VideoError, is_video, probe_video
from sr_deploy.video.options import DECODE_ERRORS

_PANEL = "Video"
CodecOpt = Annotated[str | None, typer.Option(
    rich_help_panel=_PANEL, help="Video encoder, an FFmpeg name (libx264, libx265, libsvtav1, libvpx-vp9, ffv1, "
    "libx264rgb ...); default: libx264 for 8-bit sources, libx265 for deeper ones (VP9 in .webm)")]
CrfOpt = Annotated[float | None, typer.Option(
    min=0, rich_help_panel=_PANEL, help="Constant quality of the encoder (lower is better; default: x264 18, "
    "x265 20, SVT-AV1 30, VP9 31; 0 with x264: lossless)")]
PresetOpt = Annotated[str | None, typer.Option(
    rich_help_panel=_PANEL, help="Encoder speed preset (default: medium for x264/x265, 8 for SVT-AV1)")]
PixFmtOpt = Annotated[str | None, typer.Option(
    rich_help_panel=_PANEL, help="Output pixel format, e.g. yuv420p, yuv420p10le, yuv444p; default: the "
    "source's where the encoder takes it, else yuv420p (yuv420p10le for deeper sources)")]
FrameBatchOpt = Annotated[int, typer.Option(
    min=1, rich_help_panel=_PANEL, help="Frames per model call when a frame fits in one window")]
SegmentFramesOpt = Annotated[int, typer.Option(
    min=1, rich_help_panel=_PANEL, help="Frames per segment: the output is written in independently "
    "encoded segments, the most a killed job redoes with --resume")]
ResumeOpt = Annotated[bool, typer.Option(
    rich_help_panel=_PANEL, help="Continue an interrupted video from its finished segments (same settings)")]
DecodeErrorsOpt = Annotated[str, typer.Option(
    rich_help_panel=_PANEL, help=f"A frame the decoder rejects: {' | '.join(DECODE_ERRORS)} (each skipped frame "
    "is named)")]


def video_input(path: Path) -> bool:
    """Whether ``upscale`` treats ``path`` as a video: probing finds a moving picture in it, or its suffix
    is a video container's (so a broken ``.mp4`` is reported as a video that cannot be read)."""
    return path.suffix.lower() in VIDEO_SUFFIXES or is_video(path)


def video_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of the frames of a video file (None when it is not one that can be read)."""
    try:
        info = probe_video(path)
    except VideoError:
        return None
    return info.height, info.width


def progress_columns() -> tuple[ProgressColumn | str, ...]:
    """Rich's default columns plus done/total and a rate (the task field ``rate``: fps of a video)."""
    return (*Progress.get_default_columns(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"))


def video_handler(upscaler: sr.Upscaler, options: sr.VideoOptions, progress: Progress,
                  say: Callable[[str], None]) -> Callable[[Path, Path], str | None]:
    """The ``process`` handler of :func:`sr_deploy.runtime.jobs.run_job`: upscales a video (None for
    anything else, which is then upscaled as an image), with a progress line while it runs."""

    def process(source: Path, destination: Path) -> str | None:
        if source.suffix.lower() in IMAGE_SUFFIXES or not video_input(source):
            return None
        task = progress.add_task(escape(source.name), total=None, rate="")
        started = time.perf_counter()
        first: list[int] = []  # output frames already done at the first report (resumed ones + one batch)

        def show(done: int, total: int) -> None:
            if not first:
                first.append(done)
            fps = done / max(time.perf_counter() - started, 1e-9) if first[0] == done else \
                (done - first[0]) / max(time.perf_counter() - started, 1e-9)
            progress.update(task, completed=done, total=total or None, rate=f"{fps:.2f} fps")

        try:
            result = sr.upscale_video(upscaler, source, destination, options, on_progress=show)
        finally:
            progress.remove_task(task)
        for frame in result.skipped:
            say(f"[yellow]skipped frame[/] {escape(str(source))}: {escape(frame)}")
        say(f"{escape(str(destination))}: {escape(result.summary())}")
        return result.summary()

    return process


def video_options(codec: str | None, crf: float | None, preset: str | None, pix_fmt: str | None, frame_batch: int,
                  segment_frames: int, resume: bool, decode_errors: str, tile: int | None) -> sr.VideoOptions:
    """The command's options as :class:`sr_deploy.VideoOptions` (ValueError for a bad ``decode_errors``)."""
    return sr.VideoOptions(codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt, batch=frame_batch,
                           segment_frames=segment_frames, resume=resume, decode_errors=decode_errors, tile=tile)


#: What Ctrl-C during ``upscale`` prints.
INTERRUPTED = ("interrupted: finished outputs and the finished segments of a video are kept; run the same command "
               "with --resume to continue the video")
