"""Producing commands: ``upscale`` (image files), ``pipeline`` (export -> engines -> bench -> report) and
``demo`` (the pipeline on the shipped model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

import sr_deploy as sr
from sr_deploy.bench.config import bench_settings, parse_list, parse_size
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
from sr_deploy.cli.video import (
    INTERRUPTED,
    CodecOpt,
    CrfOpt,
    DecodeErrorsOpt,
    FrameBatchOpt,
    PixFmtOpt,
    PresetOpt,
    ResumeOpt,
    SegmentFramesOpt,
    progress_columns,
    video_handler,
    video_input,
    video_options,
    video_size,
)
from sr_deploy.cluster import INSTALL_HINT, FileOutcome
from sr_deploy.data.image_io import (
    DEFAULT_MAX_PIXELS,
    OUTPUT_PIXELS_FACTOR,
    ImageReadError,
    image_size,
    printable,
)
from sr_deploy.export.int8 import PLAIN_MAX_DROP_DB
from sr_deploy.pipeline import TARGETS, StepResult, machine, run_demo
from sr_deploy.runtime.jobs import Outcome, plan_job, run_job
from sr_deploy.runtime.select import BACKENDS, DEFAULT_MODEL
from sr_deploy.video import VIDEO_SUFFIXES
from sr_deploy.vocabulary import AUTO, PRECISIONS

DeployOutOpt = Annotated[Path, typer.Option(help="Output folder (ONNX files, engines, bench/, manifest.json)")]


def upscale(
    inputs: Annotated[list[str], typer.Argument(
        help="Image and video files, folders and glob patterns ('**' recursive)")],
    output: Annotated[str, output_option(  # str: a trailing '/' (always a folder) must survive
        "Output folder, or a file name for one input (a name ending in '/' is always a folder)")],
    model: Annotated[str | None, typer.Option(
        help=f"Shipped model name or .safetensors/.pt/.onnx/.engine/.plan file; default: {DEFAULT_MODEL}")] = None,
    backend: Annotated[str, typer.Option(help=choices(BACKENDS))] = AUTO,
    precision: Annotated[str | None, typer.Option(
        help=f"{choices(PRECISIONS)}; default: the model file's own (fp32 for weights)")] = None,
    tile: Annotated[int | None, typer.Option(
        min=0, help="Tile core in input pixels (0: whole image); default: the window within the memory budget "
        "(a quarter of available memory) that computes the fewest pixels")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that already exist")] = False,
    tune: Annotated[bool, typer.Option(
        help="With --backend auto: choose by timing every route here once (cached), not by the static ranking")
    ] = True,
    max_psnr_drop: Annotated[float, typer.Option(
        min=0.0, help="With weights or an fp32 ONNX: also allow bf16 / int8 whose Y-PSNR drop against fp32, "
        "measured here, is within this many dB, on --backend (0: the model's own precision); with --precision "
        "int8: the int8 made from them on first use stays within it (0: every layer int8, written only within "
        f"{PLAIN_MAX_DROP_DB:g} dB); another model file is held to the drop it records (an int8 file over it is "
        "refused)"
    )] = 0.0,
    max_pixels: Annotated[int, typer.Option(
        min=1, help="Refuse inputs whose header says they have more pixels than this (or whose output has "
        f"more than {OUTPUT_PIXELS_FACTOR} times as many); nothing is decoded")] = DEFAULT_MAX_PIXELS,
    codec: CodecOpt = None,
    crf: CrfOpt = None,
    preset: PresetOpt = None,
    pix_fmt: PixFmtOpt = None,
    frame_batch: FrameBatchOpt = 4,
    segment_frames: SegmentFramesOpt = 250,
    resume: ResumeOpt = False,
    decode_errors: DecodeErrorsOpt = "stop",
    cluster: Annotated[str | None, typer.Option(
        help="Run the job on a Ray cluster: 'auto' ($RAY_ADDRESS, the cluster 'ray start' began here, else a new "
        f"local one) or the cluster's address (images only; needs {escape(INSTALL_HINT)})")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="With --cluster: at most this many model actors (default: one per GPU, else one per CPU)")
    ] = None,
) -> None:
    """Upscale images (grey, RGB, RGBA; 8/16-bit) with seam-free tiling on the fastest backend here.

    With --backend auto the routes that can run the model are timed once on this machine (on the first
    image's size, at most 256 x 256) and the fastest is kept in a cache; --no-tune uses the static
    ranking. Videos (any file FFmpeg demuxes with a moving picture, found by probing) get their video stream
    upscaled and every other stream copied, frame timestamps kept (see the Video options); Ctrl-C keeps their
    finished segments for --resume. Unreadable or too large files are reported and skipped. Exit code: 0 when
    every output exists at the end (outputs that already existed are left as they were), 1 when some file
    failed, 2 for usage errors, 130 when interrupted.

    Examples:

      sr-deploy upscale photo.jpg -o photo-x4.png --model runs/x4/best.safetensors

      sr-deploy upscale photos/ 'more/**/*.png' -o out/ --model model-int8.onnx --tile 128

      sr-deploy upscale video-frames/ -o out/ --max-psnr-drop 0.05

      sr-deploy upscale film.mkv -o film-x4.mkv --codec libx265 --crf 20 --resume

      sr-deploy upscale archive/ -o out/ --cluster auto --backend onnxruntime
    """
    if cluster is not None:
        settings = {"model": model, "backend": backend, "precision": precision, "tile": tile, "overwrite": overwrite,
                    "max_psnr_drop": max_psnr_drop, "max_pixels": max_pixels,
                    "tune_shape": (1, 3, TUNE_SIDE, TUNE_SIDE) if tune and backend == AUTO else None}
        summarize(upscale_on_cluster(inputs, output, cluster, workers, settings))
        return
    try:
        plan = plan_job(inputs, output, accept=video_input, file_suffixes=VIDEO_SUFFIXES)
        video = video_options(codec, crf, preset, pix_fmt, frame_batch, segment_frames, resume, decode_errors, tile)
        timed = backend == AUTO or (max_psnr_drop > 0 and precision is None)  # routes, or budget options
        shape = tune_shape(plan.pairs[0][0]) if tune and timed and plan.pairs else None
        upscaler, selection = sr.load_selected(model, backend=backend, precision=precision, tune_shape=shape,
                                               max_psnr_drop=max_psnr_drop, log=log_text)
    except (sr.BackendUnavailable, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None

    reason = escape(selection.reason).replace("WARNING:", "[bold yellow]WARNING:[/]")  # int8 from another CPU class
    say(f"[bold]{escape(upscaler.name)}[/] on {upscaler.device}: {reason}")
    for problem in plan.problems:
        not_written(problem)
    with Progress(*progress_columns(), console=console) as progress:
        task = progress.add_task("upscaling", total=len(plan.pairs), rate="")

        def show(outcome: Outcome) -> None:
            if outcome.status != "written":
                not_written(outcome)
            progress.advance(task)

        try:
            outcomes = run_job(upscaler, plan, tile=tile, overwrite=overwrite, on_outcome=show, max_pixels=max_pixels,
                               process=video_handler(upscaler, video, progress, say))
        except KeyboardInterrupt:
            say(f"[yellow]{escape(INTERRUPTED)}[/]")
            raise typer.Exit(130) from None
    summarize(outcomes)


def say(text: str) -> None:
    """A line of the job's report (paths stay whole and uncoloured)."""
    console.print(text, highlight=False, soft_wrap=True)


def not_written(outcome: Outcome | FileOutcome) -> None:
    """Report an input that was not written: ``failed`` (counted as such in the summary), or ``left`` (its output
    exists)."""
    word = "[red]failed[/]" if outcome.status == "failed" else "[yellow]left[/]"
    say(f"{word} {escape(printable(outcome.source))}: {escape(outcome.message)}")


def summarize(outcomes: Sequence[Outcome | FileOutcome]) -> None:
    """The job's last line; exit 1 when some input failed or there was none."""
    counts = {s: sum(o.status == s for o in outcomes) for s in ("written", "exists", "failed")}
    say(f"{counts['written']} written, {counts['exists']} left as they were (exist; --overwrite replaces them), "
        f"{counts['failed']} failed")
    if counts["failed"] or not outcomes:
        raise typer.Exit(1)


def upscale_on_cluster(inputs: list[str], output: str, address: str, workers: int | None,
                       settings: dict[str, Any]) -> list[FileOutcome]:
    """``upscale`` on Ray (:func:`sr_deploy.upscale_cluster` with the local job's ``settings``): the pool and
    the routes its actors chose, each input that was not written as it finishes, Ray Data's progress."""
    def started(size: int, kind: str) -> None:
        say(f"Ray: {size} model actor{'s' if size > 1 else ''} on {kind}")

    def show(outcome: FileOutcome) -> None:
        if outcome.status != "written":
            not_written(outcome)

    try:
        job = sr.upscale_cluster(inputs, output, address=address, workers=workers, on_outcome=show,
                                 on_start=started, **settings)
    except (sr.BackendUnavailable, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        say(f"[yellow]{escape(INTERRUPTED)}[/]")
        raise typer.Exit(130) from None
    for route in job.routes:
        say(f"[bold]route[/]: {escape(route)}")
    return list(job.outcomes)


#: The largest side the route probe of ``upscale --tune`` runs (time grows with pixels for every route alike).
TUNE_SIDE = 256


def tune_shape(first_image: Path) -> tuple[int, int, int, int]:
    """The probe shape for a job that starts with ``first_image`` (or a video): its size, each side at most
    :data:`TUNE_SIDE`."""
    try:
        height, width = image_size(first_image)
    except ImageReadError:
        height, width = video_size(first_image) or (TUNE_SIDE, TUNE_SIDE)  # a video: its frame size
    return (1, 3, min(height, TUNE_SIDE), min(width, TUNE_SIDE))


def tune_command(
    model: Annotated[str, typer.Argument(help="Shipped model name, weights, .onnx or .engine file")],
    precision: Annotated[str | None, typer.Option(help=f"{choices(PRECISIONS)}; default: the file's own")] = None,
    size: Annotated[str, typer.Option(help="LR input HEIGHTxWIDTH to time (the tile shape you will run)")] = "128x128",
    batch: Annotated[int, typer.Option(min=1, help="Batch size to time")] = 1,
    budget: Annotated[float, typer.Option(min=0.0, help="Seconds of timed runs per route (at least 2 runs)")] = 2.0,
    refresh: Annotated[bool, typer.Option(help="Measure again even if this machine has measured it")] = False,
    backend: Annotated[str, typer.Option(help=f"{choices(BACKENDS)}: time only this backend's routes")] = AUTO,
) -> None:
    """Time every route that can run MODEL on this machine and show the table (cached for upscale --tune).

    Example: sr-deploy tune srresnet-x4 --size 256x256
    """
    try:
        height, width = parse_size(size)
        result = sr.tune(model, precision=precision, shape=(batch, 3, height, width), budget_s=budget,
                         refresh=refresh, log=log_text, backend=backend)
    except (sr.BackendUnavailable, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    table = Table(title=f"{model}: {batch}x3x{height}x{width} on this machine"
                  + (" (cached)" if result.from_cache else ""))
    for col in ("route", "p50 ms", "runs", "status"):
        table.add_column(col)
    for t in result.timings:
        table.add_row(escape(t.label), "" if t.p50_ms is None else f"{t.p50_ms:.1f}", str(t.runs), escape(t.status))
    print_table(table)
    console.print(f"fastest: {escape(result.best.label)}", highlight=False)


def _print_steps(results: Sequence[StepResult]) -> None:
    here = machine()
    gpus = f", {', '.join(here['gpus'])}" if here["gpus"] else ""
    table = Table(title="pipeline", caption=f"{sum(r.seconds for r in results):.1f} s of steps on {here['cpu']} "
                  f"({here['isa_class']}), {here['cores']} cores{gpus}")
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
    targets: Annotated[str, typer.Option(
        help=f"Comma list of {choices(TARGETS, ',')}: what is made for whom (onnxruntime: the ort-cpu int8 layout, "
        "run by ONNX Runtime and OpenVINO; tensorrt: the TensorRT int8 layout and engines, and TensorRT in the bench)")
    ] = choices(TARGETS, ","),
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
