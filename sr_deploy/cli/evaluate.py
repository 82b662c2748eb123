"""Measuring commands: ``evaluate`` (Y-PSNR/SSIM of one model), ``bench`` (parity, accuracy and latency
of every backend x precision) and ``report`` (rewrite or compare saved bench results)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.markup import escape
from rich.table import Table

import sr_deploy as sr
from sr_deploy.artifacts import finite_or_null
from sr_deploy.bench.config import make_config, parse_list, parse_size
from sr_deploy.bench.report import compare_runs, write_report
from sr_deploy.cli.common import (
    DEVICE_CHOICES,
    WEIGHTS_HELP,
    QuickOpt,
    SuiteOpt,
    choices,
    console,
    fail,
    log_text,
    print_table,
)
from sr_deploy.data.datasets import collect_images
from sr_deploy.data.image_io import DEFAULT_MAX_PIXELS, ImageReadError
from sr_deploy.runtime.tiling import TiledUpscaler
from sr_deploy.vocabulary import BACKENDS, PRECISIONS


def mean_scores(df: pl.DataFrame) -> dict[str, float]:
    """Mean Y-PSNR and SSIM over the per-image table of :func:`sr_deploy.evaluate`."""
    return {k: float(df[k].mean()) for k in ("psnr_y", "ssim_y")}  # type: ignore[arg-type]


def evaluate(
    model: Annotated[str, typer.Option(help="'bicubic', a shipped model name, .safetensors/.pt weights or .onnx")],
    data: Annotated[list[Path] | None, typer.Option(help="Folder(s) of HR images; default: embedded images")] = None,
    scale: Annotated[int | None, typer.Option(
        min=2, help="Upscaling factor of bicubic (default 4); with a model, checked against the model's own")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print exactly one JSON object to stdout (infinite PSNR as null)")
    ] = False,
    max_pixels: Annotated[int, typer.Option(
        min=1, help="Skip HR images whose header says they have more pixels than this (nothing is decoded)")
    ] = DEFAULT_MAX_PIXELS,
) -> None:
    """Y-channel PSNR/SSIM against HR ground truth (modcrop, MATLAB bicubic LR, shave = scale).

    Models run tiled within the memory budget (the scores equal whole-image runs). An image that cannot be
    read, is too small or too large is skipped (named on stderr and under "skipped" in --json) and the exit
    code is 1; when no image can be scored it is an error (exit 2).

    Examples:

      sr-deploy evaluate --model bicubic --data ../shared/datasets/Set5/HR --scale 4

      sr-deploy evaluate --model srresnet-x4 --json

    """
    skipped: list[dict[str, str]] = []

    def skip(name: str, reason: str) -> None:
        skipped.append({"name": name, "reason": reason})
        log_text(f"skipped {name}: {reason}")

    try:
        images = collect_images([str(d) for d in data] if data else None, split="eval")
        upscaler = TiledUpscaler(sr.load(model, scale=scale))
        with console.status(f"evaluating {upscaler.name}"):
            df = sr.evaluate(upscaler, images, on_skip=skip, max_pixels=max_pixels)
    except (sr.BackendUnavailable, FileNotFoundError, ValueError, ImageReadError) as exc:
        raise fail(str(exc)) from None
    if df.is_empty():
        raise fail(f"no image could be scored ({len(skipped)} skipped)")
    mean = mean_scores(df)
    if as_json:
        obj = {"model": model, "scale": upscaler.scale, "images": df.to_dicts(), "mean": mean, "skipped": skipped}
        typer.echo(json.dumps(finite_or_null(obj), allow_nan=False))
    else:
        print_scores(df, mean, f"{model} x{upscaler.scale} (Y channel, shave {upscaler.scale})")
    if skipped:
        raise typer.Exit(1)


def print_scores(df: pl.DataFrame, mean: dict[str, float], title: str) -> None:
    """The per-image table of :func:`sr_deploy.evaluate` with its mean, on stdout."""
    table = Table(title=title)
    table.add_column("image")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    for row in df.iter_rows(named=True):
        table.add_row(row["name"], f"{row['psnr_y']:.2f}", f"{row['ssim_y']:.4f}")
    table.add_row("[bold]mean", f"[bold]{mean['psnr_y']:.2f}", f"[bold]{mean['ssim_y']:.4f}")
    print_table(table)


def bench(
    model: Annotated[str, typer.Option(help=f"{WEIGHTS_HELP} (torch fp32 reference)")],
    data: Annotated[list[Path] | None, typer.Option(help="HR image folder for accuracy (repeatable)")] = None,
    onnx: Annotated[list[Path] | None, typer.Option(help="sr-deploy ONNX file to bench (repeatable)")] = None,
    engine: Annotated[list[Path] | None, typer.Option(help="TensorRT engine to bench (repeatable)")] = None,
    backends: Annotated[str | None, typer.Option(help=f"Comma list: {choices(BACKENDS, ',')}")] = None,
    precisions: Annotated[str | None, typer.Option(help=f"Comma list: {choices(PRECISIONS, ',')}")] = None,
    sizes: Annotated[str | None, typer.Option(help="LR input sizes, e.g. 128x128,256x256,270x480")] = None,
    batches: Annotated[str | None, typer.Option(help="Batch sizes, e.g. 1,4")] = None,
    repeats: Annotated[int | None, typer.Option(help="Timed runs per shape")] = None,
    tiling_sizes: Annotated[str | None, typer.Option(
        help="Image sizes whose tiling overhead is measured (tiled vs whole), e.g. 540x960; 'none' for none")] = None,
    tiling_variants: Annotated[str | None, typer.Option(
        help="Comma list of the variants whose tiling overhead is measured (default: all)")] = None,
    device: Annotated[str | None, typer.Option(help=f"{DEVICE_CHOICES} (torch variants)")] = None,
    suite: SuiteOpt = None,
    quick: QuickOpt = False,
    out: Annotated[str, typer.Option(help="Results folder ({machine}: this machine's name)")] = "bench-results",
) -> None:
    """Parity, accuracy and latency of every backend x precision; results folder + Markdown report.

    Examples:

      sr-deploy bench --model srresnet-x4 --onnx model.fp32.onnx --onnx model.int8.onnx --quick

      sr-deploy bench --suite benchmarks/suites/cpu.toml --model srresnet-x4 --onnx runs/cpu/model.fp32.onnx
    """
    try:
        config = make_config(
            model, suite, quick,
            data=tuple(str(d) for d in data) if data else None,
            onnx=tuple(str(p) for p in onnx or ()),
            engines=tuple(str(p) for p in engine or ()),
            backends=parse_list(backends, BACKENDS, "backends") if backends else None,
            precisions=parse_list(precisions, PRECISIONS, "precisions") if precisions else None,
            sizes=tuple(parse_size(s) for s in sizes.split(",")) if sizes else None,
            batches=tuple(int(b) for b in batches.split(",")) if batches else None,
            repeats=repeats, device=device,
            tiling_sizes=None if tiling_sizes is None else () if tiling_sizes == "none"
            else tuple(parse_size(s) for s in tiling_sizes.split(",")),
            tiling_variants=tuple(t.strip() for t in tiling_variants.split(",") if t.strip()) if tiling_variants
            else None,
        )
        report_path = sr.run_bench(config, out, log=log_text)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(str(report_path))


def report(
    results: Annotated[Path | None, typer.Argument(help="Results folder to (re)write report.md and plots for")] = None,
    compare: Annotated[tuple[Path, Path] | None, typer.Option(help="OLD NEW results folders to compare")] = None,
    max_latency_regression: Annotated[float | None, typer.Option(
        min=0.0, help="With --compare: allowed p50 increase (0.1 = 10 %, the default)")] = None,
    max_psnr_drop: Annotated[float | None, typer.Option(
        min=0.0, help="With --compare: allowed mean Y-PSNR drop (dB; default 0.05)")] = None,
) -> None:
    """Regenerate a report from saved results, or compare two runs (exit 1 on a regression).

    Examples:

      sr-deploy report benchmarks/results/intel-xeon-processor-2c

      sr-deploy report --compare old-results new-results --max-latency-regression 0.1 --max-psnr-drop 0.05
    """
    if (results is None) == (compare is None):
        raise fail("give either a RESULTS_DIR or --compare OLD NEW")
    if compare is None and (max_latency_regression is not None or max_psnr_drop is not None):
        raise fail("--max-latency-regression and --max-psnr-drop are thresholds of --compare OLD NEW")
    try:
        if results is not None:
            typer.echo(str(write_report(results)))
            return
        assert compare is not None
        comparison = compare_runs(*compare, 0.1 if max_latency_regression is None else max_latency_regression,
                                  0.05 if max_psnr_drop is None else max_psnr_drop)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(comparison.to_markdown())
    for line in comparison.regressions:
        console.print(f"[bold red]regression:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if comparison.regressions:
        raise typer.Exit(1)
    console.print("no regression past the thresholds")
