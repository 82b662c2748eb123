"""Decode -> model -> encode, overlapped: three threads joined by bounded queues.

- The **decoder** thread demuxes and decodes the video stream (FFmpeg's own frame threads) and
  converts each frame to the model's ``3 x H x W`` float32 RGB in [0, 1]
  (:func:`~sr_deploy.video.colour.frame_to_rgb`).
- The **calling** thread runs the model: frames that are one window each are stacked into batches of
  up to ``batch`` frames (``N x 3 x H x W``, within the memory budget and the backend's limits); larger
  frames go through the seam-free tiling of :mod:`sr_deploy.runtime.tiling` one by one, their windows
  batched. The model runs in the calling thread so that Ctrl-C (KeyboardInterrupt) lands there.
- The **encoder** thread converts the output back (:func:`~sr_deploy.video.colour.rgb_to_frame`) and
  encodes it into segments (:mod:`sr_deploy.video.segments`), each frame at its source pts.

Each queue holds at most ``queue_frames`` frames, so memory stays bounded whatever the length of the
video and a slow stage holds the others back instead of piling frames up. On an error or an interrupt
every thread stops, the segment in progress is discarded (finished ones stay for ``resume``) and the
error is raised in the calling thread. The time each stage was busy is measured
(:class:`PipelineStats`), which is how the cost of decoding and encoding is compared with the model's.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from sr_deploy.backends.base import Upscaler
from sr_deploy.runtime.tiling import TilePlan, bytes_per_pixel, default_memory_budget, upscale_tiled
from sr_deploy.video.colour import Colour, frame_to_rgb, rgb_to_frame
from sr_deploy.video.options import Encoding, VideoOptions
from sr_deploy.video.probe import FRAME_RATE_MUXERS, VideoError, VideoInfo
from sr_deploy.video.segments import SegmentStore, SegmentWriter

_END = object()


@dataclass
class PipelineStats:
    """Frames upscaled by this run and seconds each stage was busy: ``decode_s`` (demux, decode, to RGB),
    ``model_s`` (the upscaler, tiling included), ``encode_s`` (from RGB, encode, write), ``wall_s``.
    ``skipped``: the frames the decoder rejected (``decode_errors="skip"``), each named."""

    frames: int = 0
    decode_s: float = 0.0
    model_s: float = 0.0
    encode_s: float = 0.0
    wall_s: float = 0.0
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def whole_frames(plan: TilePlan) -> bool:
    """Whether a frame goes to the model as it is: one window, no padding for the model's size rules."""
    return plan.count == 1 and not getattr(plan, "pad_h", 0) and not getattr(plan, "pad_w", 0)


def frame_batch(upscaler: Upscaler, plan: TilePlan, height: int, width: int, wanted: int,
                memory_budget: int | None) -> int:
    """Frames per model call: ``wanted`` when frames go to the model whole (:func:`whole_frames`), bounded by
    the memory budget and the backend's limits; 1 for tiled frames (their windows are batched instead)."""
    if not whole_frames(plan):
        return 1
    budget = default_memory_budget() if memory_budget is None else memory_budget
    per_frame = bytes_per_pixel(upscaler.descriptor, upscaler.precision) * height * width
    n = max(1, min(wanted, budget // max(per_frame, 1), upscaler.limits.max_batch or wanted))
    while n > 1 and not upscaler.accepts((n, 3, height, width)):
        n -= 1
    return n


def _put(q: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; returns whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue[Any], stop: threading.Event) -> Any:
    """The next item, or ``_END`` once ``stop`` is set."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    return _END


class _Decoder(threading.Thread):
    def __init__(self, info: VideoInfo, colour: Colour, store: SegmentStore, options: VideoOptions,
                 out: queue.Queue[Any], stop: threading.Event, stats: PipelineStats) -> None:
        super().__init__(name="sr-video-decode", daemon=True)
        self.info, self.colour, self.options = info, colour, options
        self.resume_after, self.index = store.last_pts, store.frames_done
        self.out, self.stop, self.stats = out, stop, stats

    def run(self) -> None:
        try:
            self._decode(seek=self.resume_after is not None)
            _put(self.out, _END, self.stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            _put(self.out, _Failed(exc), self.stop)

    def _reject(self, where: str, cause: str) -> None:
        message = f"{where}: {cause}"
        if self.options.decode_errors == "stop":
            raise VideoError(self.info.path, f"{message} (decode_errors='skip' skips such frames)")
        self.stats.skipped.append(message)

    def _decode(self, seek: bool) -> None:
        import av

        tb = self.info.time_base
        started = time.perf_counter()
        with av.open(str(self.info.path)) as container:
            stream: Any = container.streams[self.info.index]
            stream.thread_type = "AUTO"
            if self.options.codec_threads:
                stream.codec_context.thread_count = self.options.codec_threads
            if seek and self.resume_after is not None:
                container.seek(self.resume_after, stream=stream, backward=True)
            last_pts: int | None = None
            first = True
            for packet in container.demux(stream):
                if self.stop.is_set():
                    return
                try:
                    frames = packet.decode()
                except (av.FFmpegError, ValueError) as exc:
                    at = f"{float(packet.pts * tb):.3f} s" if packet.pts is not None else "unknown time"
                    self._reject(f"the frame after output frame {self.index - 1} (packet at {at})",
                                 f"decoder error: {exc}")
                    continue
                frame: Any
                for frame in frames:
                    pts = frame.pts if frame.pts is not None else (0 if last_pts is None else last_pts + 1)
                    last_pts = pts
                    if self.resume_after is not None:
                        if first and seek and pts > self.resume_after:  # the seek overshot: decode from the start
                            self.stats.decode_s += time.perf_counter() - started
                            return self._decode(seek=False)
                        first = False
                        if pts <= self.resume_after:
                            continue
                    if frame.is_corrupt:
                        self._reject(f"frame {self.index} (pts {pts}, {float(pts * tb):.3f} s)",
                                     "the decoder marked it corrupt")
                        continue
                    rgb = frame_to_rgb(frame, self.colour)
                    self.stats.decode_s += time.perf_counter() - started
                    if not _put(self.out, (self.index, pts, rgb), self.stop):
                        return
                    started = time.perf_counter()
                    self.index += 1
        self.stats.decode_s += time.perf_counter() - started
        return None


class _Encoder(threading.Thread):
    def __init__(self, store: SegmentStore, encoding: Encoding, colour: Colour, size: tuple[int, int],
                 info: VideoInfo, options: VideoOptions, source: queue.Queue[Any], stop: threading.Event,
                 stats: PipelineStats) -> None:
        super().__init__(name="sr-video-encode", daemon=True)
        self.store, self.encoding, self.colour, self.size = store, encoding, colour, size
        tb = info.time_base
        if store.muxer in FRAME_RATE_MUXERS and info.rate:  # one tick per frame at the source's rate
            self.time_base = 1 / Fraction(info.rate)
        else:  # a time base of 1/den keeps every pts exact: pts * num ticks
            self.time_base = Fraction(1, tb.denominator)
        self.ticks = tb / self.time_base
        self.rate, self.segment_frames, self.threads = info.rate, options.segment_frames, options.codec_threads
        self.source, self.stop, self.stats = source, stop, stats
        self.error: BaseException | None = None

    def run(self) -> None:
        writer: SegmentWriter | None = None
        try:
            while (item := _get(self.source, self.stop)) is not _END:
                _, pts, sr = item
                started = time.perf_counter()
                frame = rgb_to_frame(sr, self.encoding.pix_fmt, self.colour)
                if writer is None:
                    writer = self.store.writer(self.encoding, self.size[0], self.size[1], self.time_base,
                                               self.ticks, self.rate, self.threads)
                writer.write(frame, pts)
                if writer.count == self.segment_frames:
                    writer.close()
                    writer = None
                self.stats.encode_s += time.perf_counter() - started
            if writer is not None and not self.stop.is_set():
                started = time.perf_counter()
                writer.close()
                writer = None
                self.stats.encode_s += time.perf_counter() - started
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            self.error = exc
            self.stop.set()
        finally:
            if writer is not None:
                writer.abort()


def run_pipeline(
    upscaler: Upscaler,
    info: VideoInfo,
    colours: tuple[Colour, Colour],
    encoding: Encoding,
    plan: TilePlan,
    store: SegmentStore,
    options: VideoOptions,
    on_progress: Callable[[int], None] | None = None,
) -> PipelineStats:
    """Upscale the frames of ``info`` not yet in ``store`` into new segments (see the module docstring).

    ``colours``: the source's (decoding) and the output's (:func:`~sr_deploy.video.colour.output_colour`).
    ``plan``: the tiling of one frame (:func:`~sr_deploy.runtime.tiling.plan_tiles`); ``on_progress`` is
    called with the number of output frames done (finished segments included) after each model call.
    Raises :class:`~sr_deploy.video.probe.VideoError` for decoder errors (``decode_errors="stop"``) and
    re-raises KeyboardInterrupt after a clean stop.
    """
    stats = PipelineStats()
    stop = threading.Event()
    to_model: queue.Queue[Any] = queue.Queue(options.queue_frames)
    to_encoder: queue.Queue[Any] = queue.Queue(options.queue_frames)
    scale = upscaler.scale
    decoder = _Decoder(info, colours[0], store, options, to_model, stop, stats)
    encoder = _Encoder(store, encoding, colours[1], (info.width * scale, info.height * scale), info, options,
                       to_encoder, stop, stats)
    batch = frame_batch(upscaler, plan, info.height, info.width, options.batch, options.memory_budget)
    wall = time.perf_counter()
    done = store.frames_done
    decoder.start()
    encoder.start()
    ok = False
    try:
        ended = False
        while not ended:
            group: list[tuple[int, int, np.ndarray]] = []
            while len(group) < batch:
                item = _get(to_model, stop)
                if isinstance(item, _Failed):
                    raise item.error
                if item is _END:
                    ended = True
                    break
                group.append(item)
            if not group:
                break
            started = time.perf_counter()
            if whole_frames(plan):
                outputs = list(upscaler.run(np.stack([rgb for _, _, rgb in group])))
            else:
                outputs = [upscale_tiled(upscaler, rgb, plan) for _, _, rgb in group]
            stats.model_s += time.perf_counter() - started
            for (index, pts, _), sr in zip(group, outputs, strict=True):
                if not _put(to_encoder, (index, pts, sr), stop):
                    break
            if encoder.error is not None:
                raise encoder.error
            stats.frames += len(group)
            done += len(group)
            if on_progress is not None:
                on_progress(done)
        if not _put(to_encoder, _END, stop) and encoder.error is not None:
            raise encoder.error
        encoder.join()
        if encoder.error is not None:
            raise encoder.error
        ok = True
    finally:
        if not ok:
            stop.set()
        decoder.join()
        encoder.join()
        stats.wall_s = time.perf_counter() - wall
    return stats
