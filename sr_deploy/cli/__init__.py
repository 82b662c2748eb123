"""The ``sr-deploy`` command line (typer). Thin: parse, call one library function, print."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from sr_deploy.train.config import TrainConfig
    from sr_deploy.train.loop import Trainer

app = typer.Typer(
    help="sr-deploy: super-resolution models from training to verified FP32/FP16/INT8 inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """sr-deploy: super-resolution models from training to verified FP32/FP16/INT8 inference."""


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise (code 2)."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # paths stay whole
    return typer.Exit(2)


def log_text(text: str) -> None:
    """Print a progress line from library code as plain text (``[...]`` in it is not rich markup)."""
    console.print(escape(text), highlight=False, soft_wrap=True)


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="'bicubic', a shipped model name, .safetensors/.pt weights or .onnx")],
    data: Annotated[list[Path] | None, typer.Option(help="Folder(s) of HR images; default: embedded images")] = None,
    scale: Annotated[int, typer.Option(help="Upscaling factor (bicubic only; models carry their own)")] = 4,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print exactly one JSON object to stdout (infinite PSNR as null)")
    ] = False,
) -> None:
    """Y-channel PSNR/SSIM against HR ground truth (modcrop, MATLAB bicubic LR, shave = scale).

    Examples:

      sr-deploy evaluate --model bicubic --data ../shared/datasets/Set5/HR --scale 4

      sr-deploy evaluate --model srresnet-x4 --json
    """
    from sr_deploy.artifacts import finite_or_null
    from sr_deploy.data.datasets import collect_images
    from sr_deploy.data.image_io import ImageReadError
    from sr_deploy.runtime import BackendUnavailable, load
    from sr_deploy.scoring import evaluate as run_evaluate

    try:
        images = collect_images([str(d) for d in data] if data else None, split="eval")
        upscaler = load(model, scale=scale)
        with console.status(f"evaluating {upscaler.name}"):
            df = run_evaluate(upscaler, images)
    except (BackendUnavailable, FileNotFoundError, ValueError, ImageReadError) as exc:
        raise fail(str(exc)) from None
    mean = {k: float(df[k].mean()) for k in ("psnr_y", "ssim_y")}  # type: ignore[arg-type]
    if as_json:
        obj = {"model": model, "scale": upscaler.scale, "images": df.to_dicts(), "mean": mean}
        typer.echo(json.dumps(finite_or_null(obj), allow_nan=False))
        return
    table = Table(title=f"{model} x{upscaler.scale} (Y channel, shave {upscaler.scale})")
    table.add_column("image")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    for row in df.iter_rows(named=True):
        table.add_row(row["name"], f"{row['psnr_y']:.2f}", f"{row['ssim_y']:.4f}")
    table.add_row("[bold]mean", f"[bold]{mean['psnr_y']:.2f}", f"[bold]{mean['ssim_y']:.4f}")
    Console().print(table)

train_app = typer.Typer(help="Train SRResNet (MSE) or SRGAN (perceptual + adversarial) models.", no_args_is_help=True)
app.add_typer(train_app, name="train")

DataOpt = Annotated[
    list[Path] | None, typer.Option("--data", help="Training image folder (repeatable); default: embedded images")
]
ValOpt = Annotated[
    list[Path] | None, typer.Option("--val", help="Validation HR folder (repeatable); default: embedded held-out")
]
BatchOpt = Annotated[int, typer.Option(help="Batch size per process")]
LogEveryOpt = Annotated[int, typer.Option(help="Steps per log row")]
CkptEveryOpt = Annotated[int, typer.Option(help="Steps between checkpoints")]


def _train_config(options: Mapping[str, Any]) -> TrainConfig:
    """The run's TrainConfig from a ``train`` command's ``locals()``: every option named like a
    TrainConfig field, with ``out``/``data``/``val``/``init`` paths as strings (no ``--init``: "").

    Raises ValueError for an invalid option value.
    """
    from dataclasses import fields

    from sr_deploy.train.config import TrainConfig

    kw = {f.name: options[f.name] for f in fields(TrainConfig) if f.name in options}
    kw.update(out=str(kw["out"]), data=[str(d) for d in kw["data"] or []], val=[str(d) for d in kw["val"] or []],
              init=str(kw["init"] or ""))
    return TrainConfig(**kw)


def _run_trainer(trainer_cls: Callable[..., Trainer], cfg: TrainConfig, resume: bool, **extra: object) -> None:
    try:
        trainer = trainer_cls(cfg, resume=resume, log=console.print, **extra)
        summary = trainer.run()
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    val = summary["best_val_psnr_y"] if summary["best_val_psnr_y"] > -1e9 else summary["last_val_psnr_y"]
    console.print(f"done: step {summary['step']}, val Y-PSNR {val:.2f} dB (best kept), "
                  f"{summary['seconds'] / 60:.1f} min of training on {summary['device']} ({summary['precision']}); "
                  f"run folder {summary['run_dir']}")
    if summary["stopped_by_signal"]:
        console.print("stopped by a signal after saving the checkpoint; continue with --resume")
        raise typer.Exit(130)


@train_app.command("srresnet")
def train_srresnet(
    out: Annotated[Path, typer.Option(help="Run folder (checkpoint.pt, best.safetensors, log.csv, curves.png)")],
    data: DataOpt = None,
    val: ValOpt = None,
    scale: Annotated[int, typer.Option(help="2, 4 or 8")] = 4,
    steps: Annotated[int, typer.Option(help="Total steps (raise it with --resume to train longer)")] = 100_000,
    batch: BatchOpt = 16,
    patch: Annotated[int, typer.Option(help="HR patch size in pixels (multiple of scale)")] = 96,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-4,
    schedule: Annotated[str, typer.Option(help="constant | cosine (to --steps)")] = "constant",
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its checkpoint")] = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16 (CUDA)")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the weights and of every training patch")] = 0,
    ema: Annotated[float, typer.Option(help="EMA decay (0 = off); EMA weights are validated and saved")] = 0.999,
    log_every: LogEveryOpt = 100,
    val_every: Annotated[int, typer.Option(help="Steps between validations (multiple of --log-every)")] = 1000,
    ckpt_every: CkptEveryOpt = 500,
    workers: Annotated[int, typer.Option(help="Data loader worker processes")] = 1,
    num_features: Annotated[int, typer.Option(help="Width (paper: 64)")] = 64,
    num_blocks: Annotated[int, typer.Option(help="Residual blocks (paper: 16)")] = 16,
    init: Annotated[Path | None, typer.Option(help="Start from these weights (e.g. a shipped model)")] = None,
) -> None:
    """Train SRResNet with pixel MSE. Resumable; multi-GPU/multi-node through torchrun.

    Examples:

      sr-deploy train srresnet --out runs/x4 --steps 2000

      sr-deploy train srresnet --data DIR --val ../shared/datasets/Set5/HR --out runs/x4 --resume

      torchrun --nproc-per-node 2 -m sr_deploy.cli train srresnet --out runs/ddp
    """
    from sr_deploy.train.srresnet import SRResNetTrainer

    try:
        cfg = _train_config(locals())
    except ValueError as exc:
        raise fail(str(exc)) from None
    _run_trainer(SRResNetTrainer, cfg, resume)

@train_app.command("srgan")
def train_srgan(
    out: Annotated[Path, typer.Option(help="Run folder")],
    init: Annotated[Path, typer.Option(help="SRResNet weights (.safetensors or checkpoint) for the generator")],
    vgg_weights: Annotated[str, typer.Option(help="Local torchvision VGG19 file (vgg19-dcbb9e9d.pth)")],
    data: DataOpt = None,
    val: ValOpt = None,
    scale: Annotated[int, typer.Option(help="Must match --init")] = 4,
    steps: Annotated[int, typer.Option(help="Total optimisation steps")] = 100_000,
    batch: BatchOpt = 16,
    patch: Annotated[int, typer.Option(help="HR patch size (>= 16 for the discriminator)")] = 96,
    lr: Annotated[float, typer.Option(help="Adam learning rate of G and D")] = 1e-4,
    schedule: Annotated[str, typer.Option(help="constant | cosine")] = "constant",
    vgg_layer: Annotated[str, typer.Option(help="phi_i,j as 'i,j': 5,4 (paper) or 2,2")] = "5,4",
    adv_weight: Annotated[float, typer.Option(help="Weight of the adversarial loss")] = 1e-3,
    allow_random_vgg: Annotated[bool, typer.Option(help="Allow --vgg-weights random (tests only)")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out")] = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed")] = 0,
    ema: Annotated[float, typer.Option(help="EMA decay (0 = off)")] = 0.999,
    log_every: LogEveryOpt = 100,
    val_every: Annotated[int, typer.Option(help="Steps between validations")] = 1000,
    ckpt_every: CkptEveryOpt = 500,
    workers: Annotated[int, typer.Option(help="Data loader workers")] = 1,
    num_features: Annotated[int, typer.Option(help="Must match --init")] = 64,
    num_blocks: Annotated[int, typer.Option(help="Must match --init")] = 16,
) -> None:
    """Train SRGAN from SRResNet weights (VGG19 phi_5,4 MSE + 1e-3 adversarial).

    Pretrained VGG19 cannot be downloaded at run time: pass torchvision's file
    (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth) from a local path.

    Example:

      sr-deploy train srgan --init runs/x4/best.safetensors --vgg-weights ~/vgg19-dcbb9e9d.pth --out runs/gan
    """
    from sr_deploy.train.srgan import RANDOM_VGG, SRGANTrainer

    if vgg_weights == RANDOM_VGG and not allow_random_vgg:
        raise fail("--vgg-weights random makes the perceptual loss meaningless; it is for tests only and needs "
                   "--allow-random-vgg")
    try:
        layer = tuple(int(v) for v in vgg_layer.split(","))
        if len(layer) != 2:
            raise ValueError(f"--vgg-layer must be 'i,j', got {vgg_layer!r}")
        cfg = _train_config(locals())
    except ValueError as exc:
        raise fail(str(exc)) from None
    _run_trainer(SRGANTrainer, cfg, resume, vgg_weights=vgg_weights, vgg_layer=layer,
                 adv_weight=adv_weight)

@train_app.command("release")
def train_release(
    run: Annotated[Path, typer.Argument(help="Run folder with best.safetensors")],
    name: Annotated[str, typer.Option(help="Model name, e.g. srresnet-x4 (then usable as --model NAME)")],
    eval_data: Annotated[
        list[Path] | None, typer.Option("--eval", help="HR folder to score and record (repeatable)")
    ] = None,
) -> None:
    """Ship a run's best weights inside the package as NAME (safetensors + JSON + training log).

    Example:

      sr-deploy train release runs/x4 --name srresnet-x4 --eval Set5/HR --eval Set14/HR
    """
    from sr_deploy.data.datasets import collect_images
    from sr_deploy.runtime import load
    from sr_deploy.scoring import evaluate as run_evaluate
    from sr_deploy.train.release import release_run

    try:
        upscaler = load(run / "best.safetensors")
        evaluation = {}
        for folder in eval_data or []:
            df = run_evaluate(upscaler, collect_images([folder]))
            evaluation[folder.parent.name if folder.name == "HR" else folder.name] = {
                "psnr_y": float(df["psnr_y"].mean()), "ssim_y": float(df["ssim_y"].mean()),  # type: ignore[arg-type]
                "images": df.height}
        out = release_run(run, name, evaluation)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"released {out} {evaluation}")


@app.command()
def build(
    onnx: Annotated[Path, typer.Argument(help="sr-deploy ONNX file (fp32, fp16 or Q/DQ int8 graph)")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Engine file to write")] = None,
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
    from sr_deploy.backends.trt_profiles import Profile, parse_shape
    from sr_deploy.errors import BackendUnavailable
    from sr_deploy.export.tensorrt import build_engine

    try:
        result = build_engine(
            onnx, output, profiles=[Profile.parse(p) for p in profiles or ()],
            min_shape=parse_shape(min_shape) if min_shape else None,
            opt_shape=parse_shape(opt_shape) if opt_shape else None,
            max_shape=parse_shape(max_shape) if max_shape else None,
            opt_level=opt_level, workspace_gb=workspace, version_compatible=version_compatible,
            hardware_compat=hardware_compat, timing_cache=timing_cache, cache_dir=cache_dir, force=force,
            log=console.print)
    except (BackendUnavailable, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    verb = "reused" if result.reused else f"built in {result.metadata.build_seconds:.1f} s"
    console.print(f"{result.engine} ({result.metadata.precision}, TensorRT {result.metadata.tensorrt_version}, "
                  f"{result.metadata.gpu.name}): {verb}")


export_app = typer.Typer(help="Export to verified ONNX: fp32, fp16, int8 Q/DQ.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("onnx")
def export_onnx_command(
    model: Annotated[str, typer.Argument(help="Shipped model name, .safetensors or .pt checkpoint")],
    output: Annotated[Path, typer.Option("-o", "--output", help="ONNX file to write")],
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 13)")] = 17,
    static: Annotated[str | None, typer.Option(help="Fix the input size HxW (batch stays dynamic)")] = None,
) -> None:
    """fp32 ONNX with dynamic batch/height/width, checked and verified against PyTorch on ORT.

    Example: sr-deploy export onnx srresnet-x4 -o srresnet-x4.onnx
    """
    from sr_deploy.bench.config import parse_size
    from sr_deploy.export.onnx import export_onnx

    try:
        result = export_onnx(model, output, opset=opset, static=parse_size(static) if static else None)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {result.path}: {result.parity.summary()}", highlight=False)


@export_app.command("fp16")
def export_fp16_command(
    onnx_model: Annotated[Path, typer.Argument(metavar="MODEL.onnx", help="fp32 ONNX from `export onnx`")],
    output: Annotated[Path, typer.Option("-o", "--output", help="fp16 ONNX file to write")],
    calib: Annotated[Path | None, typer.Option(help="Images for the overflow check; default: embedded")] = None,
    margin: Annotated[float, typer.Option(help="Keep nodes in fp32 above 65504 / margin")] = 4.0,
) -> None:
    """fp16 weights and compute, float32 I/O; overflow-prone nodes stay fp32; verified vs fp32 on ORT.

    Example: sr-deploy export fp16 srresnet-x4.onnx -o srresnet-x4.fp16.onnx
    """
    from sr_deploy.export.fp16 import export_fp16

    try:
        result = export_fp16(onnx_model, output, calib=calib, margin=margin)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    kept = ", ".join(f"{n} (|x| {v:.3g})" for n, v in result.fp32_nodes.items()) or "none"
    console.print(f"kept in fp32: {kept}", highlight=False)
    console.print(f"wrote {result.path}: {result.parity.summary()}", highlight=False)


@export_app.command("int8")
def export_int8_command(
    onnx_model: Annotated[Path, typer.Argument(metavar="MODEL.onnx", help="fp32 ONNX from `export onnx`")],
    output: Annotated[Path, typer.Option("-o", "--output", help="int8 Q/DQ ONNX file to write")],
    target: Annotated[str, typer.Option(help="Q/DQ layout: tensorrt | ort-cpu")] = "tensorrt",
    calib: Annotated[Path | None, typer.Option(help="Calibration HR images; default: embedded")] = None,
    method: Annotated[str, typer.Option(help="minmax | percentile | entropy")] = "minmax",
    calib_images: Annotated[int | None, typer.Option(help="Use at most N calibration images")] = None,
    max_psnr_drop: Annotated[float | None, typer.Option(help="Y-PSNR budget (dB) vs fp32")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation HR images for the budget; default: embedded")] = None,
    bins: Annotated[int, typer.Option(help="Histogram bins (percentile, entropy)")] = 2048,
    percentile: Annotated[float, typer.Option(help="Percentile of |x| kept (percentile method)")] = 99.999,
    reduce_range: Annotated[bool, typer.Option(help="7-bit weights (x86 CPUs without VNNI)")] = False,
) -> None:
    """int8 Q/DQ (per-channel symmetric weights) calibrated on real LR crops, optional accuracy budget.

    Example: sr-deploy export int8 srresnet-x4.onnx --target tensorrt --method entropy
    --max-psnr-drop 0.1 --val ../shared/datasets/Set5/HR -o srresnet-x4.int8.onnx
    """
    from sr_deploy.export.int8 import export_int8

    try:
        result = export_int8(onnx_model, output, target=target, calib=calib, method=method, num_images=calib_images,
                             max_psnr_drop=max_psnr_drop, val=val, bins=bins, percentile=percentile,
                             reduce_range=reduce_range, on_step=console.print)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    if result.budget:
        b = result.budget
        console.print(f"Y-PSNR drop {b.final_drop:.3f} dB (budget {b.budget_db:g}; all-int8 {b.all_int8_drop:.3f}); "
                      f"{len(b.excluded)} layer(s) left in float: {', '.join(b.excluded) or 'none'}; "
                      f"report {result.report_path}", highlight=False)
    console.print(f"wrote {result.path}: {result.parity.summary()}", highlight=False)


@app.command()
def bench(
    model: Annotated[str, typer.Option(help="Shipped model name or .safetensors/.pt weights (torch fp32 reference)")],
    data: Annotated[list[Path] | None, typer.Option(help="HR image folder for accuracy (repeatable)")] = None,
    onnx: Annotated[list[Path] | None, typer.Option(help="sr-deploy ONNX file to bench (repeatable)")] = None,
    engine: Annotated[list[Path] | None, typer.Option(help="TensorRT engine to bench (repeatable)")] = None,
    backends: Annotated[str | None, typer.Option(help="Comma list: torch,onnxruntime,tensorrt")] = None,
    precisions: Annotated[str | None, typer.Option(help="Comma list: fp32,fp16,bf16,int8")] = None,
    sizes: Annotated[str | None, typer.Option(help="LR input sizes, e.g. 128x128,256x256,270x480")] = None,
    batches: Annotated[str | None, typer.Option(help="Batch sizes, e.g. 1,4")] = None,
    repeats: Annotated[int | None, typer.Option(help="Timed runs per shape")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N (torch variants)")] = None,
    suite: Annotated[Path | None, typer.Option(help="Suite file (TOML, settings in its 'bench' table)")] = None,
    quick: Annotated[bool, typer.Option(help="Small sizes, few repeats, two images")] = False,
    out: Annotated[str, typer.Option(help="Results folder ({machine}: this machine's name)")] = "bench-results",
) -> None:
    """Parity, accuracy and latency of every backend x precision; results folder + Markdown report.

    Examples:

      sr-deploy bench --model srresnet-x4 --onnx model.fp32.onnx --onnx model.int8.onnx --quick

      sr-deploy bench --suite benchmarks/suites/cpu.toml --model srresnet-x4 --onnx runs/cpu/model.fp32.onnx
    """
    from sr_deploy.bench.config import BACKENDS, PRECISIONS, make_config, parse_list, parse_size
    from sr_deploy.bench.run import run_bench

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
        )
        report = run_bench(config, out, log=log_text)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(str(report))


@app.command()
def report(
    results: Annotated[Path | None, typer.Argument(help="Results folder to (re)write report.md and plots for")] = None,
    compare: Annotated[tuple[Path, Path] | None, typer.Option(help="OLD NEW results folders to compare")] = None,
    max_latency_regression: Annotated[float, typer.Option(help="Allowed p50 increase (0.1 = 10 %)")] = 0.1,
    max_psnr_drop: Annotated[float, typer.Option(help="Allowed mean Y-PSNR drop (dB)")] = 0.05,
) -> None:
    """Regenerate a report from saved results, or compare two runs (exit 1 on a regression).

    Examples:

      sr-deploy report benchmarks/results/intel-xeon-processor-2c

      sr-deploy report --compare old-results new-results --max-latency-regression 0.1 --max-psnr-drop 0.05
    """
    from sr_deploy.bench.report import compare_runs, write_report

    if (results is None) == (compare is None):
        raise fail("give either a RESULTS_DIR or --compare OLD NEW")
    try:
        if results is not None:
            typer.echo(str(write_report(results)))
            return
        assert compare is not None
        comparison = compare_runs(*compare, max_latency_regression, max_psnr_drop)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    typer.echo(comparison.to_markdown())
    for line in comparison.regressions:
        console.print(f"[bold red]regression:[/] {escape(line)}", highlight=False, soft_wrap=True)
    if comparison.regressions:
        raise typer.Exit(1)
    console.print("no regression past the thresholds")


def _print_steps(results: list) -> None:  # type: ignore[type-arg]
    from rich.markup import escape

    table = Table(title="pipeline")
    for col in ("step", "status", "seconds", "note"):
        table.add_column(col)
    for r in results:
        table.add_row(r.step, r.status, f"{r.seconds:.1f}", escape(r.note))
    Console().print(table)


@app.command()
def pipeline(
    model: Annotated[str, typer.Option(help="Checkpoint (.safetensors/.pt) or shipped model name")],
    out: Annotated[Path, typer.Option(help="Output folder (ONNX files, engines, bench/, manifest.json)")],
    calib: Annotated[Path | None, typer.Option(help="Calibration image folder; default: embedded images")] = None,
    val: Annotated[Path | None, typer.Option(help="Validation HR folder (int8 budget, accuracy)")] = None,
    targets: Annotated[str, typer.Option(help="Comma list: onnxruntime,tensorrt")] = "onnxruntime,tensorrt",
    max_psnr_drop: Annotated[float, typer.Option(help="int8 accuracy budget (dB of Y-PSNR vs fp32)")] = 0.05,
    calib_images: Annotated[int | None, typer.Option(help="Use at most this many calibration images")] = None,
    suite: Annotated[Path | None, typer.Option(help="Bench settings from a suite file")] = None,
    quick: Annotated[bool, typer.Option(help="Quick bench settings")] = False,
) -> None:
    """Export fp32 -> fp16 -> int8 -> TensorRT engines -> bench -> report, skipping steps already done.

    Example:

      sr-deploy pipeline --model runs/x4/best.safetensors --calib ../shared/datasets/train/T91
        --val ../shared/datasets/Set5/HR --out runs/x4-deploy --targets onnxruntime,tensorrt
    """
    from sr_deploy.bench.config import bench_settings, parse_list
    from sr_deploy.pipeline import TARGETS, PipelineConfig, run_pipeline

    try:
        config = PipelineConfig(model, str(calib) if calib else None, str(val) if val else None,
                                parse_list(targets, TARGETS, "targets"), max_psnr_drop=max_psnr_drop,
                                calib_images=calib_images, bench=bench_settings(suite, quick))
        results = run_pipeline(config, out, log=log_text)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    _print_steps(results)
    typer.echo(str(out / "bench" / "report.md"))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("sr-deploy-demo"),
    model: Annotated[str, typer.Option(help="Model to run the demo on")] = "srresnet-x4",
) -> None:
    """The whole pipeline on the shipped SRResNet x4 and the embedded images, in a few minutes on a CPU.

    Ends with the path of the Markdown report. Example: sr-deploy demo --out demo
    """
    from sr_deploy.pipeline import run_demo

    try:
        results, report_path = run_demo(out, model, log=log_text)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    _print_steps(results)
    typer.echo(str(report_path))


@app.command()
def upscale(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders and glob patterns ('**' recursive)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder, or a file name for one input")],
    model: Annotated[str | None, typer.Option(
        help="Shipped model name or .safetensors/.pt/.onnx/.engine/.plan file; default: srresnet-x4")] = None,
    backend: Annotated[str, typer.Option(help="auto | torch | onnxruntime | tensorrt")] = "auto",
    precision: Annotated[str | None, typer.Option(
        help="fp32 | bf16 | fp16 | int8; default: the model file's own (fp32 for weights)")] = None,
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
    from rich.progress import Progress

    from sr_deploy.backends.base import BackendUnavailable
    from sr_deploy.runtime.jobs import Outcome, plan_job, run_job
    from sr_deploy.runtime.select import load_selected

    try:
        plan = plan_job(inputs, output)
        upscaler, selection = load_selected(model, backend, precision)
    except (BackendUnavailable, FileNotFoundError, ValueError) as exc:
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
