"""How much of ``upscale_video`` is the model: video fps against model-only fps, same frames, same backend.

A clip is made from a real photo (a crop panning across it, ``--size`` LR frames, H.264 CRF 18 4:2:0
with a sine-tone AAC track). For each backend, in interleaved rounds, the script times

- **model only**: ``Upscaler.run`` on the clip's decoded frames, in the batches the video pipeline
  uses (the frames already converted to float32 RGB, nothing else);
- **video**: the whole ``upscale_video`` call (probe, decode, colour conversion, model, encode
  H.264 CRF 18 preset medium, segments, join with the audio copied), wall time;

and records the busy time of each pipeline stage. ``overhead`` is video wall time over model-only time,
minus 1: what decoding, converting, encoding and joining add to the model's time end to end (the
stages overlap in threads, so this is what a user waits for, contention included). Writes
``video_efficiency.{csv,md}`` to ``--out``.

    python benchmarks/video_efficiency.py --backends torch,openvino --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import polars as pl

import sr_deploy as sr
from sr_deploy.bench.environment import environment
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import results_folder, save_markdown, save_table
from sr_deploy.data.image_io import read_image
from sr_deploy.data.imresize import imresize
from sr_deploy.hardware import this_cpu
from sr_deploy.runtime.tiling import plan_tiles
from sr_deploy.video.colour import frame_to_rgb, resolve_colour
from sr_deploy.video.pipeline import PipelineStats, frame_batch, whole_frames
from sr_deploy.video.probe import probe_video


def photo_frames(photo: Path | None, height: int, width: int, count: int) -> list[np.ndarray]:
    """``count`` LR frames (``height x width x 3`` uint8): a crop panning across ``photo`` (default: the
    astronaut photo bundled with scikit-image) brought to 1.5 times the frame size by MATLAB bicubic."""
    if photo is None:
        import skimage.data

        rgb = skimage.data.astronaut()
    else:
        rgb = read_image(photo)[:, :, :3]
    big_h, big_w = int(height * 1.5), int(width * 1.5)
    small = np.clip(imresize(rgb.astype(np.float64) / 255.0, output_shape=(big_h, big_w)), 0.0, 1.0)
    small = np.round(small * 255.0).astype(np.uint8)
    frames = []
    for i in range(count):
        x = round(i * (big_w - width) / max(count - 1, 1))
        y = round(i * (big_h - height) / max(count - 1, 1))
        frames.append(np.ascontiguousarray(small[y : y + height, x : x + width]))
    return frames


def make_clip(frames: list[np.ndarray], path: Path) -> Path:
    """The frames as H.264 (CRF 18, 4:2:0, 25 fps) with a 440 Hz AAC tone, in MP4."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"crf": "18"})
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="mono")
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(48000 * len(frames) // 25) / 48000)).astype(np.float32)
        for k in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, k
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return path


def decoded(path: Path) -> list[np.ndarray]:
    """The clip's frames as the pipeline gives them to the model (``3 x H x W`` float32 RGB)."""
    info = probe_video(path)
    colour = resolve_colour(info.pix_fmt, info.width, info.height, info.colorspace, info.color_range,
                            info.color_primaries, info.color_trc)
    with av.open(str(path)) as c:
        return [frame_to_rgb(f, colour) for f in c.decode(video=0)]


def model_only(up: sr.Upscaler, frames: list[np.ndarray], batch: int) -> float:
    """Seconds ``up.run`` takes for all ``frames`` in batches of ``batch``."""
    start = time.perf_counter()
    for first in range(0, len(frames), batch):
        up.run(np.stack(frames[first : first + batch]))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="srresnet-x4")
    parser.add_argument("--backends", default="torch", help="comma list of backends to load the model on")
    parser.add_argument("--size", default="72x128", help="LR frame HEIGHTxWIDTH")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4, help="frames per model call (VideoOptions.batch)")
    parser.add_argument("--codec-threads", default="0",
                        help="comma list of VideoOptions.codec_threads to compare (0: FFmpeg's choice)")
    parser.add_argument("--photo", type=Path, default=None, help="a real photo (default: scikit-image's astronaut)")
    parser.add_argument("--out", required=True, help="results folder ({machine} is replaced)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sr-deploy-video.") as tmp:
        clip = make_clip(photo_frames(args.photo, height, width, args.frames), Path(tmp) / "clip.mp4")
        frames = decoded(clip)
        for backend in args.backends.split(","):
            with sr.load(args.model, backend=backend) as up:
                plan = plan_tiles(up, height, width)
                batch = frame_batch(up, plan, height, width, args.batch, None)
                if not whole_frames(plan):
                    raise SystemExit(f"{args.size} frames are tiled on {up.name}: choose a smaller --size")
                threads = [int(t) for t in args.codec_threads.split(",")]
                up.run(np.stack(frames[:batch]))  # warm-up (first-run allocations)
                model_s: list[float] = []
                video_s: dict[int, list[float]] = {t: [] for t in threads}
                stats: dict[int, list[PipelineStats]] = {t: [] for t in threads}
                for _ in range(args.rounds):
                    model_s.append(model_only(up, frames, batch))
                    for t in threads:
                        options = sr.VideoOptions(batch=batch, segment_frames=args.frames, codec_threads=t)
                        start = time.perf_counter()
                        result = sr.upscale_video(up, clip, Path(tmp) / "up.mp4", options)
                        video_s[t].append(time.perf_counter() - start)
                        stats[t].append(result.stats)
                        print(f"{up.name}: model {model_s[-1]:.1f} s, video (codec threads {t}) "
                              f"{video_s[t][-1]:.1f} s", flush=True)
                m = statistics.median(model_s)
                for t in threads:
                    v = statistics.median(video_s[t])
                    mid = stats[t][min(range(args.rounds), key=lambda i: abs(video_s[t][i] - v))]  # the median round
                    rows.append({
                        "backend": up.name, "codec_threads": t, "frames": args.frames, "batch": batch,
                        "model_only_fps": round(args.frames / m, 3), "video_fps": round(args.frames / v, 3),
                        "overhead": round(v / m - 1, 3),
                        "decode_busy_of_model": round(mid.decode_s / mid.model_s, 4),
                        "encode_busy_of_model": round(mid.encode_s / mid.model_s, 4),
                        "model_s_in_video": round(mid.model_s, 2), "model_only_s": round(m, 2),
                        "video_s": round(v, 2),
                    })
    load_after = os.getloadavg()
    table = pl.DataFrame(rows)
    env = environment()
    out = results_folder(args.out, env)
    save_table(table, out, "video_efficiency", formats=("csv",))
    cpu = this_cpu()
    text = [
        f"# `upscale_video` against the model alone: {args.frames} frames of {height}x{width} "
        f"(output {4 * height}x{4 * width}), {args.model}",
        "",
        f"CPU: {cpu.model} ({cpu.isa}), {env['cpu']['logical_cores']} cores. Medians of {args.rounds} interleaved "
        f"rounds. This machine was shared with other jobs while measuring (load average {load_before[0]:.1f} "
        f"before, {load_after[0]:.1f} after, on {env['cpu']['logical_cores']} cores): the seconds are contended, "
        "the ratios within one round are what count.",
        "",
        "`overhead`: video wall time / model-only time - 1 (decode, colour conversion, encode H.264 CRF 18 "
        "medium, segments and join with the audio copied, overlapped in threads). `decode_busy_of_model` and "
        "`encode_busy_of_model`: busy seconds of the decoder and encoder threads (colour conversion included) "
        "over the model's seconds in the same run (the median round). `codec_threads`: threads of the decoder "
        "and of the encoder each (0: FFmpeg's choice).",
        "",
        markdown_table(table),
        "",
        f"Command: `python benchmarks/video_efficiency.py --model {args.model} --backends {args.backends} "
        f"--size {args.size} --frames {args.frames} --rounds {args.rounds} --batch {args.batch} "
        f"--codec-threads {args.codec_threads}`",
    ]
    print(save_markdown(out, "video_efficiency", text))


if __name__ == "__main__":
    main()
