"""Producing commands: ``upscale`` (image files), ``pipeline`` (export -> engines -> bench -> report) and
``demo`` (the pipeline on the shipped model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

import sr_deploy as sr
from sr_deploy.bench.config import bench_settings, parse_list
from sr_deploy.cli.common import (
    CalibImagesOpt,
    CalibOpt,
    PsnrBudgetOpt,
    QuickOpt,
    SuiteOpt,
    WeightsOpt,
    choices,
    console,
    fail,
    log_text,
    output_option,
    print_table,
)
from sr_deploy.pipeline import TARGETS, StepResult, run_demo
from sr_deploy.runtime.jobs import Outcome, plan_job, run_job
from sr_deploy.runtime.select import BACKENDS, DEFAULT_MODEL
from sr_deploy.vocabulary import AUTO, PRECISIONS

DeployOutOpt = Annotated[Path, typer.Option(help="Output folder (ONNX files, engines, bench/, manifest.json)")]


def upscale(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders and glob patterns ('**' recursive)")],
    output: Annotated[Path, output_option("Output folder, or a file name for one input")],
    model: Annotated[str | None, typer.Option(
        help=f"Shipped model name or .safetensors/.pt/.onnx/.engine/.plan file; default: {DEFAULT_MODEL}")] = None,
    backend: Annotated[str, typer.Option(help=choices(BACKENDS))] = AUTO,
    precision: Annotated[str | None, typer.Option(
        help=f"{choices(PRECISIONS)}; default: the model file's own (fp32 for weights)")] = None,
    tile: Annotated[int | None, typer.Option(
        min=0, help="Tile core in input pixels (0: whole image); default: from a 1 GiB memory budget")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that already exist")] = False,
) -> None:
    """Upscale images (grey, RGB, RGBA; 8/16-bit) with seam-free tiling on the fastest backend here.

    Unreadable files are reported and skipped; the exit code is 1 unless every input was written.

    Examples:

      sr-deploy upscale photo.jpg -o photo-x4.png --model runs/x4/best.safetensors

      sr-deploy upscale photos/ 'more/**/*.png' -o out/ --model model-int8.onnx --tile 128
    """
    try:
        plan = plan_job(inputs, output)
        upscaler, selection = sr.load_selected(model, backend, precision)
    except (sr.BackendUnavailable, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None

    def say(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)  # paths stay whole and uncoloured

    def skipped(outcome: Outcome) -> None:
        say(f"[yellow]skipped[/] {escape(str(outcome.source))}: {escape(outcome.message)}")

    say(f"[bold]{escape(upscaler.name)}[/] on {upscaler.device}: {escape(selection.reason)}")
    for problem in plan.problems:
        skipped(problem)
    with Progress(console=console) as progress:
        task = progress.add_task("upscaling", total=len(plan.pairs))

        def show(outcome: Outcome) -> None:
            if outcome.status != "written":
                skipped(outcome)
            progress.advance(task)

        outcomes = run_job(upscaler, plan, tile=tile, overwrite=overwrite, on_outcome=show)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("written", "exists", "failed")}
    say(f"{counts['written']} written, {counts['exists']} left as they were (exist; --overwrite replaces them), "
        f"{counts['failed']} failed")
    if counts["written"] != len(outcomes) or not outcomes:
        raise typer.Exit(1)


def _print_steps(results: Sequence[StepResult]) -> None:
    table = Table(title="pipeline")
    for col in ("step", "status", "seconds", "note"):
        table.add_column(col)
    for r in results:
        table.add_row(r.step, r.status, f"{r.seconds:.1f}", escape(r.note))
    print_table(table)


def pipeline(
    model: WeightsOpt,
    out: DeployOutOpt,
    calib: CalibOpt = None,
    val: Annotated[Path | None, typer.Option(help="Validation HR folder (int8 budget, accuracy)")] = None,
    targets: Annotated[str, typer.Option(help=f"Comma list: {choices(TARGETS, ',')}")] = choices(TARGETS, ","),
    max_psnr_drop: PsnrBudgetOpt = 0.05,
    calib_images: CalibImagesOpt = None,
    suite: SuiteOpt = None,
    quick: QuickOpt = False,
) -> None:
    """Export fp32 -> fp16 -> int8 -> TensorRT engines -> bench -> report, skipping steps already done.

    Example:

      sr-deploy pipeline --model runs/x4/best.safetensors --calib ../shared/datasets/train/T91
        --val ../shared/datasets/Set5/HR --out runs/x4-deploy --targets onnxruntime,tensorrt
    """
    try:
        config = sr.PipelineConfig(model, str(calib) if calib else None, str(val) if val else None,
                                   parse_list(targets, TARGETS, "targets"), max_psnr_drop=max_psnr_drop,
                                   calib_images=calib_images, bench=bench_settings(suite, quick))
        results = sr.run_pipeline(config, out, log=log_text)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    _print_steps(results)
    typer.echo(str(out / "bench" / "report.md"))


def demo(
    out: DeployOutOpt = Path("sr-deploy-demo"),
    model: Annotated[str, typer.Option(help="Model to run the demo on")] = DEFAULT_MODEL,
) -> None:
    """The whole pipeline on the shipped SRResNet x4 and the embedded images, in a few minutes on a CPU.

    Ends with the path of the Markdown report. Example: sr-deploy demo --out demo
    """
    try:
        results, report_path = run_demo(out, model, log=log_text)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    _print_steps(results)
    typer.echo(str(report_path))
