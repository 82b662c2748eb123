"""Whole-process speed of ``sr-deploy upscale`` on one image: auto against torch fp32, with and without a budget.

Each configuration runs as its own process (``sr-deploy upscale IMAGE -o OUT ...``), in interleaved
rounds, on an LR image of ``--size`` (default 540x960, a 4K output at x4) cut from a real photo;
the wall time of each process is recorded. Before the timed rounds every configuration runs once
untimed, so measurement and conversion caches (tuning, int8 made within the budget, compiled
OpenVINO models) are filled: the timed rounds show the steady state a user gets from the second
run on; the first-run cost is recorded separately. Writes ``upscale_speed.{csv,md}`` to ``--out``.

    python benchmarks/upscale_speed.py --photo ../shared/datasets/Set14/HR/baboon.png \
        --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from sr_deploy.bench.environment import environment
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import results_folder, save_markdown, save_table
from sr_deploy.data.image_io import read_image, write_image
from sr_deploy.data.imresize import imresize
from sr_deploy.hardware import this_cpu

CONFIGS = {
    "torch fp32": ["--backend", "torch", "--precision", "fp32"],
    "auto": ["--backend", "auto"],
    "auto --max-psnr-drop 0.05": ["--backend", "auto", "--max-psnr-drop", "0.05"],
}


def lr_image(photo: Path, height: int, width: int, out: Path) -> Path:
    """``photo`` resized (MATLAB bicubic) to ``height x width``, RGB uint8, written to ``out``."""
    rgb = read_image(photo)[:, :, :3].astype(np.float64) / 255.0
    small = np.clip(imresize(rgb, output_shape=(height, width)), 0.0, 1.0)
    write_image(out, np.round(small * 255.0).astype(np.uint8))
    return out


def run(image: Path, out: Path, args: list[str]) -> tuple[float, str]:
    """(wall seconds, the upscaler it chose) of one ``sr-deploy upscale`` process (raises when it fails)."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "sr_deploy.cli", "upscale", str(image), "-o", str(out), "--overwrite", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "400"})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    chosen = next((line.split(" on ")[0] for line in proc.stderr.splitlines() if " on cpu: " in line), "?")
    return time.perf_counter() - start, chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, required=True, help="a real photo to cut the LR image from")
    parser.add_argument("--size", default="540x960", help="LR HEIGHTxWIDTH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", required=True, help="results folder ({machine} is replaced)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="sr-deploy-speed.") as tmp:
        image = lr_image(args.photo, height, width, Path(tmp) / "lr.png")
        first = {name: run(image, Path(tmp) / "first.png", extra)[0] for name, extra in CONFIGS.items()}
        times: dict[str, list[float]] = {name: [] for name in CONFIGS}
        chosen: dict[str, str] = {}
        for _ in range(args.rounds):
            for name, extra in CONFIGS.items():
                seconds, chosen[name] = run(image, Path(tmp) / "sr.png", extra)
                times[name].append(seconds)
                print(f"{name}: {seconds:.1f} s ({chosen[name]})", flush=True)
    base = statistics.median(times["torch fp32"])
    for name in CONFIGS:
        median = statistics.median(times[name])
        rows.append({"configuration": name, "upscaler": chosen[name], "first_run_s": round(first[name], 1),
                     "median_s": round(median, 1), "min_s": round(min(times[name]), 1),
                     "max_s": round(max(times[name]), 1), "speedup_vs_torch_fp32": round(base / median, 2)})
    table = pl.DataFrame(rows)
    env = environment()
    out = results_folder(args.out, env)
    save_table(table, out, "upscale_speed", formats=("csv",))
    cpu = this_cpu()
    text = [
        f"# `sr-deploy upscale` of one {height}x{width} LR image (output {4 * height}x{4 * width}), whole processes",
        "",
        f"CPU: {cpu.model} ({cpu.isa}), {env['cpu']['logical_cores']} cores; shipped srresnet-x4; "
        f"{args.rounds} interleaved rounds after one untimed run of each (caches filled; `first_run_s` is that run).",
        "",
        markdown_table(table),
        "",
        f"Command: `python benchmarks/upscale_speed.py --photo {args.photo} --size {args.size} "
        f"--rounds {args.rounds} --out '{args.out}'`",
    ]
    print(save_markdown(out, "upscale_speed", text))


if __name__ == "__main__":
    main()
