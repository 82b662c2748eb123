"""Images/s of the ``upscale`` job: local, and on a local Ray cluster with 1 and 2 model actors (same images).

One local Ray instance (``--cpus`` CPU slots, no dashboard) is started for the whole run; its start-up time is
recorded apart. Every configuration runs the same job: ``--images`` LR crops of ``--size`` cut from the
photos in ``--photos``, the model ``--model`` on ``--backend`` (a fixed route, so every configuration runs the
same engine and writes the same files: checked byte for byte each round), written to a fresh folder.
``local`` is the job the ``upscale`` command runs (load the model, :func:`sr_deploy.runtime.jobs.run_job`, in
this process); ``ray N`` is :func:`sr_deploy.upscale_cluster` with ``workers=N``, timed from the call to its
return (actor start-up and model loading included, as a user waits for them). ``steady`` images/s counts
the images finished between the first and the last outcome (start-up excluded). Configurations run in
interleaved rounds after one untimed round (conversion caches filled); medians are reported. The load
average of the machine before and after is recorded: on a shared machine the numbers are contended.

Where the time of a GPU actor would go besides the model: the same run times decoding a ``--codec-size`` LR
image and encoding its 4x output (a bicubic stand-in of the output's size) as PNG and JPEG on this CPU
(``codec.csv``), the per-image CPU work the GPU plan in README moves into separate stages.

    python benchmarks/cluster_scaling.py --photos ../shared/datasets/Set14/HR --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

import sr_deploy as sr
from sr_deploy.bench.environment import environment
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import results_folder, save_markdown, save_table
from sr_deploy.data.image_io import encode_image, list_images, read_image, write_image
from sr_deploy.hardware import this_cpu
from sr_deploy.runtime.jobs import plan_job, run_job


def make_images(photos: Path, count: int, height: int, width: int, out: Path) -> Path:
    """``count`` RGB crops of ``height x width`` from the photos (cycled, at spread-out offsets) in ``out``."""
    sources = [read_image(p)[:, :, :3] for p in list_images(photos)]
    sources = [s for s in sources if s.shape[0] >= height and s.shape[1] >= width and s.shape[2] == 3]
    if not sources:
        raise SystemExit(f"no RGB photo in {photos} is at least {height}x{width}")
    out.mkdir(parents=True)
    for i in range(count):
        src = sources[i % len(sources)]
        y = (i * 37) % (src.shape[0] - height + 1)
        x = (i * 53) % (src.shape[1] - width + 1)
        write_image(out / f"img{i:04d}.png", np.ascontiguousarray(src[y:y + height, x:x + width]))
    return out


def codec_times(photos: Path, height: int, width: int, repeats: int = 3) -> pl.DataFrame:
    """Median ms to decode an LR ``height x width`` image and to encode its x4 output, PNG and JPEG, and the
    encoded sizes (MB); the output is the LR image resized x4 (bicubic), a photo-like stand-in."""
    photo = next(p for p in list_images(photos) if read_image(p).shape[2] >= 3)
    lr = np.asarray(Image.fromarray(read_image(photo)[:, :, :3]).resize((width, height), Image.Resampling.BICUBIC))
    hr = np.asarray(Image.fromarray(lr).resize((4 * width, 4 * height), Image.Resampling.BICUBIC))
    rows = []
    for label, img in ((f"LR {height}x{width}", lr), (f"x4 output {4 * height}x{4 * width}", hr)):
        for fmt in ("png", "jpeg"):
            encode, decode = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                data = encode_image(img, fmt)
                encode.append(time.perf_counter() - start)
                start = time.perf_counter()
                Image.open(io.BytesIO(data)).load()
                decode.append(time.perf_counter() - start)
            rows.append({"image": label, "format": fmt, "encode_ms": round(1000 * statistics.median(encode)),
                         "decode_ms": round(1000 * statistics.median(decode)), "mb": round(len(data) / 1e6, 2)})
    return pl.DataFrame(rows)


def timed(job: Callable[[Callable[[], None]], Path]) -> tuple[Path, float, float | None]:
    """(what ``job(finished)`` returns, its wall seconds, the seconds between the first and the last image it
    reported finished)."""
    marks: list[float] = []
    start = time.perf_counter()
    result = job(lambda: marks.append(time.perf_counter()))
    wall = time.perf_counter() - start
    return result, wall, (marks[-1] - marks[0]) if len(marks) > 1 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True, help="folder of real photos to cut the images from")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", default="96x128", help="LR HEIGHTxWIDTH")
    parser.add_argument("--model", default="srresnet-x4")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--workers", default="1,2", help="comma list of actor counts")
    parser.add_argument("--cpus", type=int, default=2, help="CPU slots of the local Ray instance")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--codec-size", default="540x960", help="LR HEIGHTxWIDTH of the decode/encode timing")
    parser.add_argument("--out", required=True, help="results folder ({machine} is replaced)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    counts = [int(w) for w in args.workers.split(",")]
    load_before = os.getloadavg()
    import ray

    with tempfile.TemporaryDirectory(prefix="sr-deploy-cluster-bench.") as tmp:
        images = make_images(args.photos, args.images, height, width, Path(tmp) / "in")
        outs = iter(range(1_000_000))

        def local(finished: Callable[[], None]) -> Path:
            out = Path(tmp) / f"out{next(outs)}"
            with sr.load(args.model, backend=args.backend) as up:
                outcomes = run_job(up, plan_job([str(images)], f"{out}/"), on_outcome=lambda _o: finished())
            assert all(o.status == "written" for o in outcomes), outcomes
            return out

        def cluster(n: int) -> Callable[[Callable[[], None]], Path]:
            def job(finished: Callable[[], None]) -> Path:
                out = Path(tmp) / f"out{next(outs)}"
                result = sr.upscale_cluster([str(images)], f"{out}/", model=args.model, backend=args.backend,
                                            workers=n, on_outcome=lambda _o: finished())
                assert all(o.status == "written" for o in result.outcomes), result.outcomes
                return out
            return job

        configs: dict[str, Callable[[Callable[[], None]], Path]] = {"local": local}
        configs.update({f"ray {n} worker{'s' if n > 1 else ''}": cluster(n) for n in counts})
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        try:
            reference: dict[str, bytes] | None = None
            results: dict[str, list[tuple[float, float | None]]] = {name: [] for name in configs}
            for round_index in range(args.rounds + 1):
                for name, job in configs.items():
                    folder, wall, steady = timed(job)
                    written = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
                    reference = reference or written
                    assert written == reference, f"{name} wrote different files"
                    if round_index:  # round 0 fills the caches
                        results[name].append((wall, steady))
                    print(f"round {round_index} {name}: {wall:.1f} s", flush=True)
        finally:
            ray.shutdown()
    codec_h, codec_w = (int(v) for v in args.codec_size.lower().split("x"))
    codec = codec_times(args.photos, codec_h, codec_w)
    load_after = os.getloadavg()
    rows = []
    base = statistics.median(args.images / w for w, _ in results["local"])
    for name, runs in results.items():
        rate = statistics.median(args.images / w for w, _ in runs)
        steadies = [(args.images - 1) / s for _, s in runs if s]
        rows.append({"configuration": name, "median_wall_s": round(statistics.median(w for w, _ in runs), 1),
                     "images_per_s": round(rate, 3), "steady_images_per_s": round(statistics.median(steadies), 3)
                     if steadies else None, "vs_local": round(rate / base, 2)})
    table = pl.DataFrame(rows)
    env = environment()
    out = results_folder(args.out, env)
    save_table(table, out, "cluster_scaling", formats=("csv",))
    save_table(codec, out, "codec", formats=("csv",))
    cpu = this_cpu()
    text = [
        f"# `upscale` locally and on a local Ray cluster: {args.images} images of {height}x{width} "
        f"(output {4 * height}x{4 * width})",
        "",
        f"CPU: {cpu.model} ({cpu.isa}), {env['cpu']['logical_cores']} logical cores; model {args.model} on "
        f"{args.backend} (default threads per session); Ray {ray.__version__}, {args.cpus} CPU slots, one "
        f"model actor per slot at most; Ray start-up {ray_start:.1f} s (not in the times). {args.rounds} "
        "interleaved rounds after one untimed round; medians. Every configuration wrote the same files, byte for "
        "byte.",
        "",
        f"**Shared machine:** load average {load_before[0]:.1f} before and {load_after[0]:.1f} after the run "
        f"(on {env['cpu']['logical_cores']} cores): other jobs ran beside this one, so compare the rows with "
        "each other, not with other runs.",
        "",
        markdown_table(table),
        "",
        "Decode and encode on this CPU, one image at a time (median of 3; what an actor does besides the model):",
        "",
        markdown_table(codec),
        "",
        f"Command: `python benchmarks/cluster_scaling.py --photos {args.photos} --images {args.images} "
        f"--size {args.size} --model {args.model} --backend {args.backend} --workers {args.workers} "
        f"--cpus {args.cpus} --rounds {args.rounds} --codec-size {args.codec_size}`",
    ]
    print(save_markdown(out, "cluster_scaling", text))


if __name__ == "__main__":
    main()
