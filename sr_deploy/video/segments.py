"""Segments of an upscaled video: written one by one, remembered for ``resume``, joined at the end.

The upscaled video stream is encoded in segments of ``segment_frames`` frames. Each segment is its
own encoder session, so it starts with a key frame and references nothing outside itself (a closed
GOP), and each is written in the output's own container format (so timestamps keep exactly the
precision the output can hold). A segment file appears under its final name only when it is
complete (:func:`sr_deploy.artifacts.atomic_open`), and the manifest that lists the finished
segments is rewritten atomically after each one, so a job killed at any moment leaves at most the
segment in progress to redo.

Everything lives in a hidden folder beside the output, ``.NAME.sr-parts/`` (never mistaken for the
finished file); the output itself is written by :func:`join_segments` under a temporary name and
renamed when complete, and the folder is removed afterwards. The manifest records what the segments
depend on (the source file's size and modification time, the model, the encoding): ``resume`` with
other settings is refused rather than mixing two runs in one file.

:func:`join_segments` stream-copies the segments' packets into the output and interleaves them by
time with the source's other streams (audio, subtitles, data), also copied packet for packet without
re-encoding; the source's chapters, container metadata and the video stream's language and display
matrix (rotation, its translation scaled with the picture) are carried over where the output
container supports them. Streams the container cannot hold are left out and named.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from sr_deploy.artifacts import atomic_open, atomic_write_json
from sr_deploy.video.options import Encoding
from sr_deploy.video.probe import FRAME_RATE_MUXERS, VideoInfo

MANIFEST = "manifest.json"
#: container metadata keys that describe the writing muxer, not the content (never copied)
_MUXER_KEYS = {"major_brand", "minor_version", "compatible_brands", "encoder"}


def parts_folder(destination: Path) -> Path:
    """Where the segments of ``destination`` are kept while it is being made."""
    return destination.parent / f".{destination.name}.sr-parts"


@dataclass(frozen=True)
class Segment:
    """A finished segment: ``file`` in the parts folder, output frames ``first`` to ``first + count - 1``,
    and the source pts of its first and last frame."""

    file: str
    first: int
    count: int
    first_pts: int
    last_pts: int


class SegmentStore:
    """The parts folder of one output: its manifest and finished segments.

    ``key``: what the segments depend on (JSON-serialisable). With ``resume`` the finished segments of
    an earlier run with the same key are kept (those whose files exist, in order); without it any
    earlier parts are removed. Raises ValueError when ``resume`` finds parts made with another key.
    """

    def __init__(self, destination: Path, key: dict[str, Any], *, resume: bool, muxer: str) -> None:
        self.folder = parts_folder(destination)
        self.suffix = destination.suffix
        self.muxer = muxer
        self.key = key
        self.segments: list[Segment] = []
        if self.folder.is_dir():
            earlier = self._read_manifest()
            if resume and earlier is not None and earlier.get("key") != key:
                changed = sorted(k for k in set(key) | set(earlier.get("key", {}))
                                 if key.get(k) != earlier.get("key", {}).get(k))
                raise ValueError(f"the partial output in {self.folder} was made with other settings "
                                 f"({', '.join(changed)}): run without resume to start again")
            if resume and earlier is not None:
                for entry in earlier.get("segments", []):
                    seg = Segment(**entry)
                    if not (self.folder / seg.file).is_file() or seg.first != self.frames_done:
                        break
                    self.segments.append(seg)
            else:
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._save()

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _save(self) -> None:
        atomic_write_json(self.folder / MANIFEST, {"key": self.key, "segments": [asdict(s) for s in self.segments]})

    @property
    def frames_done(self) -> int:
        """Output frames in finished segments."""
        return sum(s.count for s in self.segments)

    @property
    def last_pts(self) -> int | None:
        """Source pts of the last finished frame (None: nothing finished)."""
        return self.segments[-1].last_pts if self.segments else None

    def writer(self, encoding: Encoding, width: int, height: int, time_base: Fraction, ticks: Fraction,
               rate: Fraction | None, threads: int = 0) -> SegmentWriter:
        """A writer for the next segment, encoding in ``time_base`` where a source pts is ``ticks`` units,
        with ``threads`` encoder threads (0: FFmpeg's choice)."""
        name = f"seg-{len(self.segments):06d}{self.suffix}"
        return SegmentWriter(self, name, encoding, width, height, time_base, ticks, rate, threads)

    def finished(self, segment: Segment) -> None:
        """Record a finished segment (the manifest is rewritten atomically)."""
        self.segments.append(segment)
        self._save()

    def remove(self) -> None:
        """Remove the parts folder (after the output is complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)


class SegmentWriter:
    """Encodes frames into one segment file; :meth:`close` publishes it, :meth:`abort` discards it."""

    def __init__(self, store: SegmentStore, name: str, encoding: Encoding, width: int, height: int,
                 time_base: Fraction, ticks: Fraction, rate: Fraction | None, threads: int = 0) -> None:
        import av

        self.store, self.name, self.ticks = store, name, ticks
        self.first = store.frames_done
        self.count = 0
        self.first_pts: int | None = None
        self.last_pts: int | None = None
        self._last_out: int | None = None
        self._files = contextlib.ExitStack()
        handle = self._files.enter_context(atomic_open(store.folder / name, "wb"))
        try:
            self.container = av.open(handle, "w", format=store.muxer)
            stream: Any = self.container.add_stream(encoding.codec, rate=rate or 25, options=dict(encoding.options))
            stream.width, stream.height, stream.pix_fmt = width, height, encoding.pix_fmt
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
            if threads:
                stream.codec_context.thread_count = threads
            self.stream = stream
            self._tagged = False
        except BaseException:
            self._files.__exit__(*sys.exc_info())
            raise

    def write(self, frame: Any, pts: int) -> None:
        """Encode ``frame`` (an ``av.VideoFrame`` tagged with its colour) at source pts ``pts`` (recorded as
        such; encoded as ``pts * ticks`` in the writer's time base, rounded, and kept increasing: a variable-rate
        source written in a frame-rate time base (AVI) moves a frame that would share a tick to the next one)."""
        if not self._tagged:  # the stream's colour tags come from the first frame
            cc = self.stream.codec_context
            cc.colorspace, cc.color_range = frame.colorspace, frame.color_range
            cc.color_primaries, cc.color_trc = frame.color_primaries, frame.color_trc
            self._tagged = True
        out = round(pts * self.ticks)
        if self._last_out is not None and out <= self._last_out:
            out = self._last_out + 1
        frame.pts = self._last_out = out
        frame.time_base = self.stream.codec_context.time_base
        self.container.mux(self.stream.encode(frame))
        self.first_pts = pts if self.first_pts is None else self.first_pts
        self.last_pts = pts
        self.count += 1

    def close(self) -> Segment:
        """Flush the encoder, publish the file under its name and record it in the manifest."""
        try:
            self.container.mux(self.stream.encode(None))
            self.container.close()
        except BaseException:
            self.abort()
            raise
        self._files.close()
        assert self.first_pts is not None and self.last_pts is not None, "an empty segment is never closed"
        segment = Segment(self.name, self.first, self.count, self.first_pts, self.last_pts)
        self.store.finished(segment)
        return segment

    def abort(self) -> None:
        """Discard the segment (its temporary file is removed; nothing is recorded)."""
        with contextlib.suppress(Exception):
            self.container.close()
        self._files.__exit__(RuntimeError, RuntimeError("aborted"), None)


def _packets(container: Any, streams: list[Any], mapping: dict[int, Any]) -> Iterator[tuple[Fraction, int, Any]]:
    """(time in seconds, order, packet) of ``streams``, each packet's stream set to its output stream."""
    for order, packet in enumerate(container.demux(streams)):
        if packet.size == 0:
            continue
        ts = packet.dts if packet.dts is not None else packet.pts
        seconds = Fraction(ts) * packet.time_base if ts is not None and packet.time_base else Fraction(0)
        packet.stream = mapping[packet.stream.index]
        yield seconds, order, packet


def decode_timestamps(pts: list[int]) -> list[int]:
    """Decode timestamps for packets in decode order with presentation timestamps ``pts``, for containers
    that do not store them (Matroska): the sorted pts delayed by the smallest reorder depth ``d`` that
    keeps every dts at or before its pts; the first ``d`` packets get the ticks just before the first pts."""
    ordered = sorted(pts)
    depth = next(d for d in range(len(pts) + 1) if all(ordered[i - d] <= pts[i] for i in range(d, len(pts))))
    return [ordered[0] - (depth - i) if i < depth else ordered[i - depth] for i in range(len(pts))]


def _video_packets(store: SegmentStore, out_stream: Any, extradata: bytes | None
                   ) -> Iterator[tuple[Fraction, int, Any]]:
    import av

    last_dts: int | None = None
    next_pts: int | None = None  # frame-rate containers: where the next segment's frames start
    order = 0
    for seg in store.segments:
        with av.open(str(store.folder / seg.file)) as container:
            stream = container.streams.video[0]
            if (stream.codec_context.extradata or None) != extradata:
                raise ValueError(f"segment {seg.file} has other codec parameters than the first segment")
            packets = [p for _, _, p in _packets(container, [stream], {stream.index: out_stream})]
            pts = [p.pts for p in packets if p.pts is not None]
            if store.muxer in FRAME_RATE_MUXERS and pts:  # each file counts its frames from 0: continue the last
                shift = 0 if next_pts is None else next_pts - min(pts)
                for packet in packets:
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts = None if packet.dts is None else packet.dts + shift
                next_pts = max(pts) + shift + 1
            if any(p.dts is None for p in packets) and all(p.pts is not None for p in packets):
                for packet, dts in zip(packets, decode_timestamps([p.pts for p in packets]), strict=True):
                    packet.dts = dts
            for packet in packets:
                if packet.dts is not None and last_dts is not None and packet.dts <= last_dts:
                    if packet.pts is not None and last_dts + 1 > packet.pts:
                        raise ValueError(f"segment {seg.file}: decode timestamps overlap the previous segment")
                    packet.dts = last_dts + 1
                last_dts = packet.dts if packet.dts is not None else last_dts
                seconds = Fraction(packet.dts if packet.dts is not None else packet.pts or 0) * packet.time_base
                order += 1
                yield seconds, order, packet


def _cannot_hold(muxer: str, stream: Any) -> str | None:
    """Why a ``muxer`` file cannot hold a copy of ``stream`` (None: it can), found by writing the header of
    a scratch file in memory: some refusals only come when the header is written."""
    import av

    try:
        with av.open(io.BytesIO(), "w", format=muxer) as scratch:
            scratch.add_stream_from_template(stream)
            scratch.start_encoding()
    except (ValueError, av.FFmpegError) as exc:
        return str(exc).split("; last error log: ")[-1]
    return None


def scaled_display_matrix(matrix: tuple[int, ...], scale: int) -> list[int]:
    """The source's display matrix for a picture ``scale`` times larger: the rotation is kept, the
    translation (entries 6 and 7, in pixels) scaled."""
    out = list(matrix)
    out[6], out[7] = out[6] * scale, out[7] * scale
    return out


def join_segments(store: SegmentStore, source: VideoInfo, destination: Path, scale: int) -> list[str]:
    """Write ``destination`` (atomically) from the finished segments and the source's other streams,
    chapters and metadata (see the module docstring). Returns notes on what could not be carried over."""
    import av

    notes: list[str] = []
    if not store.segments:
        raise ValueError("no frames were upscaled, so there is no video to write")
    with av.open(str(source.path)) as src, av.open(str(store.folder / store.segments[0].file)) as first, \
            atomic_open(destination, "wb") as handle:
        with av.open(handle, "w", format=store.muxer) as out:
            template = first.streams.video[0]
            video = out.add_stream_from_template(template, opaque=True)  # a copy: no codec opened
            src_video = src.streams[source.index]
            for key in ("language", "title", "handler_name"):
                if key in src_video.metadata:
                    video.metadata[key] = src_video.metadata[key]
            if source.display_matrix is not None:
                video.set_display_matrix(scaled_display_matrix(source.display_matrix, scale))
            mapping: dict[int, Any] = {}
            copied = []
            for st in src.streams:
                if st.index == source.index:
                    continue
                problem = _cannot_hold(store.muxer, st)
                if problem is None:
                    mapping[st.index] = out.add_stream_from_template(st)
                    copied.append(st)
                else:
                    codec = f" {st.codec_context.name}" if st.codec_context else ""
                    what = f"stream #{st.index} ({st.type}{codec})"
                    notes.append(f"{what} left out: the {store.muxer} container cannot hold it ({problem})")
            for key, value in src.metadata.items():
                if key.lower() not in _MUXER_KEYS:
                    out.metadata[key] = value
            chapters = src.chapters()
            if chapters:
                try:
                    out.set_chapters(chapters)
                except (ValueError, av.FFmpegError) as exc:
                    notes.append(f"chapters left out: {exc}")
            extradata = template.codec_context.extradata or None
            streams = [_video_packets(store, video, extradata)]
            if copied:
                streams.append(_packets(src, copied, mapping))
            for _, _, packet in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
                out.mux(packet)
    return notes
