"""Plain int8 calibration methods compared: Y-PSNR drop of every method x Q/DQ layout (no budget).

For each target layout (``ort-cpu``, ``tensorrt``) and method (``minmax``, ``percentile``,
``entropy``) the fp32 ONNX model is quantized with ``sr-deploy export int8`` defaults (all
quantizable layers int8) on the ``--calib`` images, then every model is scored with ONNX Runtime
CPU on each ``--data`` folder (Y-PSNR/SSIM, shave = scale), beside the fp32 model. Writes
``int8_calibration.{csv,parquet,md}`` to ``--out``; quantized models go to ``--work`` and are
reused when present.

Usage (from the repository root):
    python benchmarks/int8_calibration.py runs/cpu-precisions/fp32.onnx --calib ../shared/datasets/train/T91 \\
        --data ../shared/datasets/Set5/HR --data ../shared/datasets/Set14/HR \\
        --work runs/int8-calibration --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console

import sr_deploy as sr
from sr_deploy.artifacts import atomic_write_bytes
from sr_deploy.bench.environment import environment, machine_slug
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import save_table
from sr_deploy.bench.run import dataset_name
from sr_deploy.data.datasets import collect_images
from sr_deploy.export.qdq import LAYOUTS, METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path, help="sr-deploy fp32 ONNX model")
    parser.add_argument("--calib", type=Path, required=True, help="calibration image folder")
    parser.add_argument("--calib-images", type=int, default=None, help="use at most N calibration images")
    parser.add_argument("--data", type=Path, action="append", required=True, help="HR evaluation folder (repeatable)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the quantized models")
    parser.add_argument("--out", required=True, help="results folder ({machine} is replaced)")
    args = parser.parse_args()
    console = Console()
    args.work.mkdir(parents=True, exist_ok=True)
    models: dict[tuple[str, str], Path] = {("fp32", "-"): args.fp32}
    for target in LAYOUTS:
        for method in METHODS:
            path = args.work / f"int8-{target}-{method}.onnx"
            if not path.exists():
                console.print(f"export int8 {target} {method}")
                # every plain method is measured, also one that would fail the plain-export gate
                sr.export_int8(args.fp32, path, target=target, calib=args.calib, method=method,
                               num_images=args.calib_images, max_plain_drop=math.inf)
            models[(target, method)] = path
    rows: list[dict[str, Any]] = []
    for (target, method), path in models.items():
        with sr.load(path, backend="onnxruntime") as upscaler:
            for folder in args.data:
                scores = sr.evaluate(upscaler, collect_images([folder]))
                rows.append({"layout": target, "method": method, "dataset": dataset_name(str(folder)),
                             "psnr_y": scores["psnr_y"].mean(), "ssim_y": scores["ssim_y"].mean()})
                console.print(f"{target} {method} {rows[-1]['dataset']}: {rows[-1]['psnr_y']:.3f} dB")
    table = pl.DataFrame(rows)
    fp32 = table.filter(pl.col("layout") == "fp32").select("dataset", pl.col("psnr_y").alias("fp32_psnr_y"))
    table = table.join(fp32, on="dataset").with_columns(drop_db=pl.col("fp32_psnr_y") - pl.col("psnr_y"))
    table = table.drop("fp32_psnr_y")
    out = Path(args.out.replace("{machine}", machine_slug(environment())))
    out.mkdir(parents=True, exist_ok=True)
    save_table(table, out, "int8_calibration")
    wide = table.filter(pl.col("layout") != "fp32").pivot(on="dataset", index=["layout", "method"], values="drop_db")
    lines = [
        "# Plain int8 calibration (all quantizable layers int8, no budget): Y-PSNR drop from fp32 (dB)",
        "",
        f"Model: `{args.fp32}`; calibration: `{args.calib}` ({args.calib_images or 'all'} images, sr-deploy export "
        "int8 defaults); ONNX Runtime CPU.",
        "",
        markdown_table(wide),
    ]
    atomic_write_bytes(out / "int8_calibration.md", ("\n".join(lines) + "\n").encode())
    console.print(f"wrote {out / 'int8_calibration.md'}")


if __name__ == "__main__":
    main()
