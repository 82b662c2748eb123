"""Plain int8 calibration methods compared: Y-PSNR drop of every method x Q/DQ layout (no budget).

For each target layout (``--target``: ``ort-cpu``, ``tensorrt``), method (``--method``: ``minmax``,
``percentile``, ``entropy``) and weight width (``--weights``: ``auto`` = what ``sr-deploy export int8``
decides on this CPU, ``8bit``, ``7bit`` = reduce_range) the fp32 ONNX model is quantized with
``sr-deploy export int8`` defaults otherwise (all quantizable layers int8) on the ``--calib`` images,
then every model is scored on each ``--engine`` (``onnxruntime`` by default, ``openvino``) on each
``--data`` folder (Y-PSNR/SSIM, shave = scale), beside the fp32 model (scored on the first engine).
Each option defaults to all its values except ``--weights`` (auto; 7-bit weights exist for the
``ort-cpu`` layout only) and ``--engine``. A file an engine refuses (OpenVINO: symmetric int8 without
VNNI) is listed under "Refused" in the report with the reason, and has no row in the table.
Writes ``int8_calibration.{csv,parquet,md}`` to ``--out``; quantized models go to ``--work`` and are
reused when present (named by layout, method and weight width).

The engines' int8 arithmetic differs between CPU classes; the files do not (given the weight width),
and neither does calibration (fp32). So the AVX2-only arithmetic (no VNNI: u8s8 can saturate) can be
measured on an AVX-512 machine in two steps: ``--export-only`` natively, then the same command under
``tests/emulate_cpu.sh avx2`` (QEMU; accuracy only), which reuses the files and scores them there.

Usage (from the repository root):
    python benchmarks/int8_calibration.py runs/cpu-precisions/fp32.onnx --calib ../shared/datasets/train/T91 \\
        --data ../shared/datasets/Set5/HR --data ../shared/datasets/Set14/HR \\
        --work runs/int8-calibration --out 'benchmarks/results/{machine}'
    A="runs/cpu-precisions/fp32.onnx --calib ../shared/datasets/train/T91 --calib-images 40 --target ort-cpu \
        --method entropy --weights 8bit --weights 7bit --data ../shared/datasets/Set5/HR --work runs/int8-avx2"
    python benchmarks/int8_calibration.py $A --export-only
    tests/emulate_cpu.sh avx2 .venv/bin/python benchmarks/int8_calibration.py $A --out 'benchmarks/results/{machine}'
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console

import sr_deploy as sr
from sr_deploy import BackendUnavailable
from sr_deploy.backends import onnx_metadata
from sr_deploy.bench.report import markdown_table
from sr_deploy.bench.results import results_folder, save_markdown, save_table
from sr_deploy.bench.run import dataset_name
from sr_deploy.data.datasets import collect_images
from sr_deploy.export.int8 import default_reduce_range
from sr_deploy.export.qdq import LAYOUTS, METHODS
from sr_deploy.hardware import this_cpu

#: ``--weights`` choices: the ``reduce_range`` argument of :func:`sr_deploy.export_int8`.
WEIGHTS: dict[str, bool | None] = {"auto": None, "8bit": False, "7bit": True}


def calibration_used(models: dict[tuple[str, str, str], Path]) -> str:
    """What the int8 files' calibration used, from the first one's record: images used (of those drawn, the ones
    smaller than a crop are skipped), crops."""
    path = next(p for (target, _, _), p in models.items() if target != "fp32")
    record = json.loads(onnx_metadata.file_props(path)[onnx_metadata.CALIBRATION])
    skipped = f", {len(record['skipped'])} drawn too small" if record["skipped"] else ""
    return f"{record['num_images']} images used{skipped}, {record['crops']} crops of {record['crop']}x{record['crop']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32", type=Path, help="sr-deploy fp32 ONNX model")
    parser.add_argument("--calib", type=Path, required=True, help="calibration image folder")
    parser.add_argument("--calib-images", type=int, default=None, help="draw at most N calibration images")
    parser.add_argument("--data", type=Path, action="append", required=True, help="HR evaluation folder (repeatable)")
    parser.add_argument("--target", action="append", choices=tuple(LAYOUTS), help="Q/DQ layout (repeatable)")
    parser.add_argument("--method", action="append", choices=METHODS, help="calibration method (repeatable)")
    parser.add_argument("--weights", action="append", choices=tuple(WEIGHTS),
                        help="weight width: auto (decided from this CPU), 8bit or 7bit (repeatable; default auto)")
    parser.add_argument("--engine", action="append", choices=("onnxruntime", "openvino"),
                        help="CPU engine that scores the files (repeatable; default onnxruntime)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the quantized models")
    parser.add_argument("--export-only", action="store_true", help="make the int8 files in --work, score nothing")
    parser.add_argument("--out", help="results folder ({machine} is replaced); required unless --export-only")
    args = parser.parse_args()
    if not args.export_only and not args.out:
        parser.error("--out is required unless --export-only")
    console = Console()
    args.work.mkdir(parents=True, exist_ok=True)
    cpu = this_cpu()
    models: dict[tuple[str, str, str], Path] = {("fp32", "-", "-"): args.fp32}
    for target in args.target or LAYOUTS:
        for method in args.method or METHODS:
            for weights in args.weights or ["auto"]:
                seven_bit = WEIGHTS[weights]
                if seven_bit is None:
                    seven_bit = default_reduce_range(target, cpu)
                elif seven_bit and LAYOUTS[target].symmetric_activations:
                    console.print(f"skip {target} {method} 7bit: 7-bit weights are for the u8s8 ort-cpu layout")
                    continue
                path = args.work / f"int8-{target}-{method}-{7 if seven_bit else 8}bit.onnx"
                if not path.exists():
                    console.print(f"export int8 {target} {method} weights {weights} ({cpu.isa} CPU)")
                    # every plain method is measured, also one that would fail the plain-export gate
                    sr.export_int8(args.fp32, path, target=target, calib=args.calib, method=method,
                                   num_images=args.calib_images, max_plain_drop=math.inf, reduce_range=seven_bit,
                                   on_step=console.print)
                models[(target, method, weights)] = path
    if args.export_only:
        console.print(f"made {len(models) - 1} int8 files in {args.work}")
        return
    engines = args.engine or ["onnxruntime"]
    rows: list[dict[str, Any]] = []
    refused: dict[tuple[str, str, str, str], str] = {}
    for engine in engines:
        for (target, method, weights), path in models.items():
            if target == "fp32" and engine != engines[0]:
                continue
            try:
                upscaler = sr.load(path, backend=engine)
            except BackendUnavailable as e:
                refused[(engine, target, method, weights)] = str(e)
                console.print(f"{engine} {target} {method} {weights}: refused: {e}")
                continue
            with upscaler:
                for folder in args.data:
                    scores = sr.evaluate(upscaler, collect_images([folder]))
                    rows.append({"engine": engine, "layout": target, "method": method, "weights": weights,
                                 "dataset": dataset_name(str(folder)), "isa_class": cpu.isa,
                                 "psnr_y": scores["psnr_y"].mean(), "ssim_y": scores["ssim_y"].mean()})
                    console.print(f"{engine} {target} {method} {weights} {rows[-1]['dataset']}: "
                                  f"{rows[-1]['psnr_y']:.3f} dB")
    table = pl.DataFrame(rows)
    fp32 = table.filter(pl.col("layout") == "fp32").select("dataset", pl.col("psnr_y").alias("fp32_psnr_y"))
    table = table.join(fp32, on="dataset").with_columns(drop_db=pl.col("fp32_psnr_y") - pl.col("psnr_y"))
    table = table.drop("fp32_psnr_y")
    out = results_folder(args.out)
    save_table(table, out, "int8_calibration")
    wide = table.filter(pl.col("layout") != "fp32").pivot(
        on="dataset", index=["engine", "layout", "method", "weights"], values="drop_db")
    lines = [
        "# Plain int8 calibration (all quantizable layers int8, no budget): Y-PSNR drop from fp32 (dB)",
        "",
        f"CPU: {cpu.model} ({cpu.isa}, VNNI {'yes' if cpu.vnni else 'no'}). Model: `{args.fp32}`; calibration: "
        f"`{args.calib}` ({calibration_used(models)}, sr-deploy export int8 defaults); "
        f"scored on {', '.join(engines)}. "
        f"Weights `auto` = {'8-bit' if cpu.vnni else '7-bit (reduce_range)'} on this CPU for the ort-cpu layout. "
        f"Drops are from fp32 on {engines[0]}.",
        "",
        markdown_table(wide),
        *(["", "Refused:", ""] + [f"- {' '.join(k)}: {why}" for k, why in refused.items()] if refused else []),
        "",
        "Command: `python benchmarks/int8_calibration.py " + " ".join(sys.argv[1:]) + "`"
        + (" under `tests/emulate_cpu.sh`" if cpu.model.startswith("QEMU ") else ""),
    ]
    console.print(f"wrote {save_markdown(out, 'int8_calibration', lines)}")


if __name__ == "__main__":
    main()
