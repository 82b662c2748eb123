"""Upscale one video file: probe, check every choice, run the pipeline into segments, join, clean up.

Everything that can be refused is refused before the first frame is upscaled: a file that is not a
video or whose first frame does not decode, an output suffix no muxer is known for, a colour matrix
that cannot be inverted, an encoder, pixel format or container that do not fit, and an upscaled size
beyond the encoder's limits (:mod:`sr_deploy.video.options`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sr_deploy._version import __version__
from sr_deploy.backends.base import Upscaler
from sr_deploy.runtime.tiling import plan_tiles
from sr_deploy.video.colour import Colour, output_colour, resolve_colour
from sr_deploy.video.options import Encoding, VideoOptions, choose_encoding
from sr_deploy.video.pipeline import PipelineStats, run_pipeline
from sr_deploy.video.probe import MUXERS, VideoError, VideoInfo, probe_video
from sr_deploy.video.segments import SegmentStore, join_segments


@dataclass(frozen=True)
class VideoResult:
    """What :func:`upscale_video` wrote: the output size, frame count (``resumed``: frames taken from an
    earlier run's segments), the encoding and the colour it was written in, frames skipped for decoder errors, notes
    on streams or chapters the output container could not hold, and the stage timings of this run."""

    destination: Path
    width: int
    height: int
    frames: int
    resumed: int
    encoding: Encoding
    colour: Colour
    skipped: tuple[str, ...]
    notes: tuple[str, ...]
    stats: PipelineStats

    def summary(self) -> str:
        """One line: size, frames, encoding, colour, and what was skipped or left out."""
        text = (f"{self.width}x{self.height}, {self.frames} frames, {self.encoding.codec} {self.encoding.pix_fmt}, "
                f"{self.colour.describe()}")
        if self.resumed:
            text += f", {self.resumed} frames resumed"
        if self.skipped:
            more = ", ..." if len(self.skipped) > 1 else ""
            text += f"; {len(self.skipped)} frames skipped ({self.skipped[0]}{more})"
        return text + "".join(f"; {n}" for n in self.notes)


def output_muxer(destination: Path, source_container: str) -> str:
    """The FFmpeg muxer for ``destination``: from its suffix, or, for a name without one, the source's own
    container format (``source_container``: the demuxer's names, e.g. ``matroska,webm``). ValueError
    naming the known suffixes otherwise."""
    muxer = MUXERS.get(destination.suffix.lower())
    if muxer is None and not destination.suffix:
        muxer = next((name for name in source_container.split(",") if name in MUXERS.values()), None)
    if muxer is None:
        raise ValueError(f"no video container is known for the output {destination.name!r}: use one of "
                         f"{', '.join(MUXERS)}")
    return muxer


def upscale_video(
    upscaler: Upscaler,
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    options: VideoOptions | None = None,
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> VideoResult:
    """Upscale the video stream of ``source`` into ``destination`` (container from its suffix), copying
    the other streams, chapters and metadata, each frame at its source timestamp.

    ``options``: encoding, batching, segments, decoder errors, resume (:class:`VideoOptions`).
    ``on_progress(done, total)`` is called after each model call with output frames done and the
    frame count the container announces (0: unknown). Raises :class:`VideoError` naming the file and
    the problem; KeyboardInterrupt stops cleanly (finished segments are kept for ``resume``).
    """
    options = options or VideoOptions()
    src, dst = Path(source), Path(destination)
    info = probe_video(src)
    scale = upscaler.scale
    width, height = info.width * scale, info.height * scale
    try:
        muxer = output_muxer(dst, info.container)
        colour = resolve_colour(info.pix_fmt, info.width, info.height, info.colorspace, info.color_range,
                                info.color_primaries, info.color_trc)
        encoding = choose_encoding(options, info.pix_fmt, info.bit_depth, width, height, muxer)
        written = output_colour(colour, encoding.pix_fmt)
        plan = plan_tiles(upscaler, info.height, info.width, options.tile, options.memory_budget)
    except ValueError as exc:
        raise VideoError(src, str(exc)) from None
    store = SegmentStore(dst, _resume_key(src, info, upscaler, encoding, options), resume=options.resume,
                         muxer=muxer)
    resumed = store.frames_done
    total = info.frames or (round(info.duration_s * float(info.rate)) if info.duration_s and info.rate else 0)
    stats = run_pipeline(upscaler, info, (colour, written), encoding, plan, store, options,
                         None if on_progress is None else lambda done: on_progress(done, total))
    try:
        notes = join_segments(store, info, dst, scale)
    except ValueError as exc:
        raise VideoError(src, str(exc)) from None
    store.remove()
    if info.frames and not resumed and store.frames_done + len(stats.skipped) < info.frames:
        notes.append(f"the container announced {info.frames} frames, {store.frames_done} were decoded "
                     "(a truncated file?)")
    return VideoResult(dst, width, height, store.frames_done, resumed, encoding, written, tuple(stats.skipped),
                       tuple(notes), stats)


def _resume_key(src: Path, info: VideoInfo, upscaler: Upscaler, encoding: Encoding,
                options: VideoOptions) -> dict[str, object]:
    """What the segments of a run depend on: a resumed run must match it."""
    stat = src.stat()
    return {
        "source": str(src.resolve()), "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
        "model": f"{upscaler.name} {upscaler.precision} {upscaler.descriptor!r} {upscaler.weights_digest()}",
        "encoding": encoding.describe(),
        "segment_frames": options.segment_frames, "tile": options.tile, "decode_errors": options.decode_errors,
        "video_stream": info.index, "sr_deploy": __version__,
    }
