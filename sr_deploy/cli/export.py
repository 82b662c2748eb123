"""Exporting commands: ``export onnx | fp16 | int8`` (verified ONNX files), ``export triton`` (a Triton model
repository) and ``build`` (a TensorRT engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import sr_deploy as sr
from sr_deploy.backends.trt_profiles import parse_shape
from sr_deploy.bench.config import parse_size
from sr_deploy.cli.common import (
    CalibImagesOpt,
    CalibOpt,
    OptionalPsnrBudgetOpt,
    choices,
    console,
    fail,
    output_option,
)
from sr_deploy.export.fp16_search import DEFAULT_LARGE, DEFAULT_MARGIN
from sr_deploy.export.onnx import DEFAULT_OPSET
from sr_deploy.export.qdq import DEFAULT_BINS, DEFAULT_METHOD, DEFAULT_PERCENTILE, LAYOUTS, METHODS
from sr_deploy.export.sensitivity import MEASURE_ON
from sr_deploy.export.triton import DEFAULT_BATCH_WAIT_MS as TRITON_BATCH_WAIT_MS
from sr_deploy.export.triton import KINDS as TRITON_KINDS
from sr_deploy.export.triton import export_triton

export_app = typer.Typer(help="Export to verified ONNX: fp32, fp16, int8 Q/DQ.", no_args_is_help=True)

Fp32OnnxArg = Annotated[Path, typer.Argument(metavar="MODEL.onnx", help="fp32 ONNX from `export onnx`")]


@export_app.command("onnx")
def export_onnx_command(
    model: Annotated[str, typer.Argument(help="Shipped model name, .safetensors or .pt checkpoint")],
    output: Annotated[Path, output_option("ONNX file to write")],
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 13)")] = DEFAULT_OPSET,
    static: Annotated[str | None, typer.Option(
        help="Fix the input size HxW (batch stays dynamic); the runtime pads and tiles other sizes into windows of it"
    )] = None,
) -> None:
    """fp32 ONNX with dynamic batch/height/width, checked and verified against PyTorch on ORT.

    Example: sr-deploy export onnx srresnet-x4 -o srresnet-x4.onnx
    """
    try:
        result = sr.export_onnx(model, output, opset=opset, static=parse_size(static) if static else None)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {result.path}: {result.parity.summary()}", highlight=False)
    if result.fallback:
        console.print(f"note: {result.fallback}", highlight=False)


@export_app.command("fp16")
def export_fp16_command(
    onnx_model: Fp32OnnxArg,
    output: Annotated[Path, output_option("fp16 ONNX file to write")],
    calib: Annotated[Path | None, typer.Option(help="Images for the overflow search; default: embedded")] = None,
    calib_images: CalibImagesOpt = None,
    margin: Annotated[float, typer.Option(help="Keep nodes in fp32 above 65504 / margin")] = DEFAULT_MARGIN,
    large_size: Annotated[int, typer.Option(
        min=0, help="Side (LR pixels) of the large input the magnitudes are also measured on; 0: none")
    ] = DEFAULT_LARGE,
    max_psnr_drop: Annotated[float | None, typer.Option(
        help="fp16 accuracy budget (dB of Y-PSNR vs fp32): also keep the fewest nodes fp32 that hold it")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation HR images for the budget; default: embedded")] = None,
) -> None:
    """fp16 weights and compute, float32 I/O; nodes that overflow, turn inf/NaN or (with a budget) cost
    accuracy in fp16 stay fp32, each with its reason; verified vs fp32 on ORT.

    Example: sr-deploy export fp16 srresnet-x4.onnx --max-psnr-drop 0.01 -o srresnet-x4.fp16.onnx
    """
    try:
        result = sr.export_fp16(onnx_model, output, calib=calib, num_images=calib_images, margin=margin,
                                large=large_size or None, max_psnr_drop=max_psnr_drop, val=val,
                                on_step=console.print)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"kept in fp32: {len(result.fp32_nodes)} node(s)", highlight=False)
    for name, why in result.fp32_nodes.items():
        console.print(f"  {name}: {why.describe()}", highlight=False)
    if result.budget:
        b = result.budget
        console.print(f"Y-PSNR drop {b.final_drop:.4f} dB emulated fp16, {result.ort_drop_db:.4f} dB on ONNX Runtime "
                      f"CPU (budget {b.budget_db:g}; with only the overflow nodes fp32 {b.fp16_drop:.4f})",
                      highlight=False)
    console.print(f"wrote {result.path}: {result.parity.summary()}", highlight=False)


@export_app.command("int8")
def export_int8_command(
    onnx_model: Fp32OnnxArg,
    output: Annotated[Path, output_option("int8 Q/DQ ONNX file to write")],
    target: Annotated[str, typer.Option(help=f"Q/DQ layout: {choices(LAYOUTS)}")] = "tensorrt",
    calib: CalibOpt = None,
    method: Annotated[str, typer.Option(help=choices(METHODS))] = DEFAULT_METHOD,
    calib_images: CalibImagesOpt = None,
    max_psnr_drop: OptionalPsnrBudgetOpt = None,
    val: Annotated[Path | None, typer.Option(help="Validation HR images for the budget; default: embedded")] = None,
    bins: Annotated[int, typer.Option(help="Histogram bins (percentile, entropy)")] = DEFAULT_BINS,
    percentile: Annotated[float, typer.Option(help="Percentile of |x| kept (percentile method)")] = DEFAULT_PERCENTILE,
    reduce_range: Annotated[bool | None, typer.Option(
        "--reduce-range/--no-reduce-range",
        help="7-bit weights; default: on for the ort-cpu layout on CPUs without VNNI (u8s8 saturates there)")] = None,
    measure_on: Annotated[str, typer.Option(
        help=f"CPU engine that measures the drop and the budget (the one that will run the file): "
             f"{choices(MEASURE_ON)}")] = "onnxruntime",
) -> None:
    """int8 Q/DQ (per-channel symmetric weights) calibrated on real LR crops, optional accuracy budget.

    Example: sr-deploy export int8 srresnet-x4.onnx --target tensorrt --method entropy
    --max-psnr-drop 0.1 --val ../shared/datasets/Set5/HR -o srresnet-x4.int8.onnx
    """
    try:
        result = sr.export_int8(onnx_model, output, target=target, calib=calib, method=method,
                                num_images=calib_images, max_psnr_drop=max_psnr_drop, val=val, bins=bins,
                                percentile=percentile, reduce_range=reduce_range, measure_on=measure_on,
                                on_step=console.print)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    if result.budget:
        b = result.budget
        console.print(f"Y-PSNR drop {b.final_drop:.3f} dB (budget {b.budget_db:g}; all-int8 {b.all_int8_drop:.3f}); "
                      f"{len(b.excluded)} layer(s) left in float: {', '.join(b.excluded) or 'none'}; "
                      f"report {result.report_path}", highlight=False)
    console.print(f"wrote {result.path}: {result.parity.summary()}", highlight=False)


def build(
    onnx: Annotated[Path, typer.Argument(help="sr-deploy ONNX file (fp32, fp16 or Q/DQ int8 graph)")],
    output: Annotated[Path | None, output_option("Engine file to write")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Engine cache folder (names derived from the request)")] = None,
    min_shape: Annotated[str | None, typer.Option("--min", help="Smallest input NxCxHxW, e.g. 1x3x32x32")] = None,
    opt_shape: Annotated[str | None, typer.Option("--opt", help="Input shape to tune for, e.g. 1x3x256x256")] = None,
    max_shape: Annotated[str | None, typer.Option("--max", help="Largest input, e.g. 4x3x720x1280")] = None,
    profiles: Annotated[list[str] | None, typer.Option(help="MIN:OPT:MAX profile (repeatable)")] = None,
    timing_cache: Annotated[Path | None, typer.Option(help="Timing cache file, reused and updated")] = None,
    opt_level: Annotated[int, typer.Option(help="Builder optimization level 0-5")] = 3,
    workspace: Annotated[float | None, typer.Option(help="Workspace limit in GiB")] = None,
    version_compatible: Annotated[bool, typer.Option(help="Engine runs on later TensorRT of the same major")] = False,
    hardware_compat: Annotated[str, typer.Option(help="none | same-cc | ampere+")] = "none",
    force: Annotated[bool, typer.Option(help="Rebuild even if an up-to-date engine exists")] = False,
) -> None:
    """Build a strongly typed TensorRT engine (precision from the ONNX) with a metadata sidecar.

    Examples:

      sr-deploy build model.onnx -o model.engine --min 1x3x32x32 --opt 1x3x256x256 --max 4x3x720x1280

      sr-deploy build model-fp16.onnx --cache-dir engines --timing-cache engines/timing.cache
    """
    try:
        result = sr.build_engine(
            onnx, output, profiles=[sr.Profile.parse(p) for p in profiles or ()],
            min_shape=parse_shape(min_shape) if min_shape else None,
            opt_shape=parse_shape(opt_shape) if opt_shape else None,
            max_shape=parse_shape(max_shape) if max_shape else None,
            opt_level=opt_level, workspace_gb=workspace, version_compatible=version_compatible,
            hardware_compat=hardware_compat, timing_cache=timing_cache, cache_dir=cache_dir, force=force,
            log=console.print)
    except (sr.BackendUnavailable, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    verb = "reused" if result.reused else f"built in {result.metadata.build_seconds:.1f} s"
    console.print(f"{result.engine} ({result.metadata.precision}, TensorRT {result.metadata.tensorrt_version}, "
                  f"{result.metadata.gpu.name}): {verb}")


@export_app.command("triton")
def export_triton_command(
    model: Annotated[str, typer.Argument(help="Shipped model name, weights, .onnx or .engine")],
    output: Annotated[Path, output_option("Triton model repository folder")],
    onnx: Annotated[Path | None, typer.Option(help="Serve this sr-deploy ONNX file (default: MODEL, or an "
                                                   "fp32 ONNX exported from it)")] = None,
    engine: Annotated[Path | None, typer.Option(help="Serve this TensorRT engine (with its sidecar)")] = None,
    name: Annotated[str | None, typer.Option(help="Triton model name (default: MODEL's name)")] = None,
    max_batch: Annotated[int | None, typer.Option(help="max_batch_size (default: 8 for ONNX, the engine's "
                                                       "profile maximum)")] = None,
    instances: Annotated[int, typer.Option(help="Model instances (instance_group count)")] = 1,
    kind: Annotated[str, typer.Option(help=choices(TRITON_KINDS))] = "gpu",
    batch_wait_ms: Annotated[float, typer.Option(help="Dynamic batching: longest wait for a batch (ms)")]
    = TRITON_BATCH_WAIT_MS,
) -> None:
    """Write a Triton Inference Server model repository: REPO/NAME/config.pbtxt and REPO/NAME/1/model.onnx|plan.

    Examples:

      sr-deploy export triton srresnet-x4 -o triton-repo --onnx srresnet-x4.fp16.onnx --max-batch 8

      sr-deploy export triton srresnet-x4 -o triton-repo --engine srresnet-x4.engine --instances 2
    """
    if onnx is not None and engine is not None:
        raise fail("give at most one of --onnx and --engine")
    try:
        result = export_triton(model, output, onnx_path=onnx, engine=engine, name=name, max_batch=max_batch,
                                  instances=instances, kind=kind, batch_wait_ms=batch_wait_ms)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    dims = " x ".join(str(d) for d in result.input.dims)
    console.print(f"wrote {result.config} and {result.model_file}: {result.input.name} [{dims}] -> "
                  f"{result.output.name}, max_batch_size {result.max_batch_size}", highlight=False)
