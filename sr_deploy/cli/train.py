"""Training commands: ``train srresnet``, ``train srgan`` (resumable; multi-GPU through torchrun) and
``train release`` (ship a run's best weights as a named model)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

import sr_deploy as sr
from sr_deploy.cli.common import AUTO_DEVICE_CHOICES, choices, console, fail, paths
from sr_deploy.cli.evaluate import mean_scores
from sr_deploy.data.datasets import collect_images
from sr_deploy.train.config import TrainConfig
from sr_deploy.train.loop import Trainer
from sr_deploy.train.release import release_run
from sr_deploy.train.srgan import RANDOM_VGG, SRGANTrainer
from sr_deploy.train.srresnet import SRResNetTrainer
from sr_deploy.vocabulary import AUTO, TRAIN_PRECISIONS

train_app = typer.Typer(help="Train SRResNet (MSE) or SRGAN (perceptual + adversarial) models.", no_args_is_help=True)

DataOpt = Annotated[
    list[Path] | None, typer.Option("--data", help="Training image folder (repeatable); default: embedded images")
]
ValOpt = Annotated[
    list[Path] | None, typer.Option("--val", help="Validation HR folder (repeatable); default: embedded held-out")
]
StepsOpt = Annotated[int, typer.Option(
    help="Total steps (raise it with --resume to train longer; a cosine schedule then spans the new total)")]
BatchOpt = Annotated[int, typer.Option(help="Batch size per process")]
ScheduleOpt = Annotated[str, typer.Option(help="constant | cosine (to --steps)")]
MatchesInitOpt = Annotated[int, typer.Option(help="Must match --init")]


@dataclass(frozen=True)
class RunOptions:
    """How a training run runs (resumed or new, where, in what precision, its seed, EMA and cadence): the
    options both training commands take after their model options."""

    resume: bool
    device: str
    precision: str
    seed: int
    ema: float
    log_every: int
    val_every: int
    ckpt_every: int
    workers: int

    def config(self, out: Path, data: list[Path] | None, val: list[Path] | None, init: Path | None, *,
               scale: int, steps: int, batch: int, patch: int, lr: float, schedule: str, num_features: int,
               num_blocks: int) -> TrainConfig:
        """The run's TrainConfig: these options and the command's own, paths as strings (no init: "").

        Raises ValueError for an invalid value.
        """
        return TrainConfig(out=str(out), data=paths(data), val=paths(val), scale=scale, steps=steps, batch=batch,
                           patch=patch, lr=lr, schedule=schedule, device=self.device, precision=self.precision,
                           seed=self.seed, ema=self.ema, log_every=self.log_every, val_every=self.val_every,
                           ckpt_every=self.ckpt_every, workers=self.workers, num_features=num_features,
                           num_blocks=num_blocks, init=str(init or ""))


def run_options(
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its checkpoint, with its model and "
                                              "optimisation settings (batch, patch, lr, schedule, ...)")] = False,
    device: Annotated[str, typer.Option(help=AUTO_DEVICE_CHOICES)] = AUTO,
    precision: Annotated[str, typer.Option(help=f"{choices((AUTO, *TRAIN_PRECISIONS))} (CUDA)")] = AUTO,
    seed: Annotated[int, typer.Option(help="Seed of the weights and of every training patch")] = 0,
    ema: Annotated[float, typer.Option(help="EMA decay (0 = off); EMA weights are validated and saved")] = 0.999,
    log_every: Annotated[int, typer.Option(help="Steps per log row")] = 100,
    val_every: Annotated[int, typer.Option(help="Steps between validations (multiple of --log-every)")] = 1000,
    ckpt_every: Annotated[int, typer.Option(help="Steps between checkpoints")] = 500,
    workers: Annotated[int, typer.Option(help="Data loader worker processes")] = 1,
) -> RunOptions:
    """The command-line options of :class:`RunOptions` (declared once, in their --help order)."""
    return RunOptions(resume=resume, device=device, precision=precision, seed=seed, ema=ema, log_every=log_every,
                      val_every=val_every, ckpt_every=ckpt_every, workers=workers)


def with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with its ``run: RunOptions`` parameter spelled out as the options of :func:`run_options`,
    in its place (so --help keeps their order): typer sees those options, ``command`` gets the RunOptions."""
    own = inspect.signature(command, eval_str=True).parameters
    shared = inspect.signature(run_options, eval_str=True).parameters
    if "run" not in own:
        raise TypeError(f"{command.__name__} has no 'run: RunOptions' parameter")
    params = [q for p in own.values() for q in (shared.values() if p.name == "run" else (p,))]

    @functools.wraps(command)
    def wrapper(**options: Any) -> None:
        run = run_options(**{name: options.pop(name) for name in shared})
        command(run=run, **options)

    wrapper.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


#: the training parameters that library messages name, and the flags they are on this command line
PARAMETER_FLAGS = (("resume=True", "--resume"), ("out folder", "--out folder"))


def flags_for(message: str) -> str:
    """A library error message with the parameters it names spelled as this command's flags."""
    for parameter, flag in PARAMETER_FLAGS:
        message = message.replace(parameter, flag)
    return message


def _run_trainer(trainer_cls: Callable[..., Trainer], cfg: TrainConfig, resume: bool, **extra: object) -> None:
    try:
        trainer = trainer_cls(cfg, resume=resume, log=console.print, **extra)
        summary = trainer.run()
    except (FileNotFoundError, ValueError) as exc:
        raise fail(flags_for(str(exc))) from None
    best = trainer.select_best and summary["best_val_psnr_y"] > -1e9
    val = f"{summary['best_val_psnr_y']:.2f} dB (best kept)" if best else f"{summary['last_val_psnr_y']:.2f} dB (last)"
    took = (f"val Y-PSNR {val}, {summary['seconds'] / 60:.1f} min of training on {summary['device']} "
            f"({summary['precision']}); run folder {summary['run_dir']}")
    if summary["stopped_by_signal"]:
        console.print(f"stopped at step {summary['step']}, {took}")
        console.print("stopped by a signal after saving the checkpoint; continue with --resume")
        raise typer.Exit(130)
    console.print(f"done: step {summary['step']}, {took}")


@train_app.command("srresnet")
@with_run_options
def train_srresnet(
    out: Annotated[Path, typer.Option(help="Run folder (checkpoint.pt, best.safetensors, log.csv, curves.png)")],
    data: DataOpt = None,
    val: ValOpt = None,
    scale: Annotated[int, typer.Option(help="2, 4 or 8")] = 4,
    steps: StepsOpt = 100_000,
    batch: BatchOpt = 16,
    patch: Annotated[int, typer.Option(help="HR patch size in pixels (multiple of scale)")] = 96,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-4,
    schedule: ScheduleOpt = "constant",
    *,
    run: RunOptions,
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
    try:
        cfg = run.config(out, data, val, init, scale=scale, steps=steps, batch=batch, patch=patch, lr=lr,
                         schedule=schedule, num_features=num_features, num_blocks=num_blocks)
    except ValueError as exc:
        raise fail(str(exc)) from None
    _run_trainer(SRResNetTrainer, cfg, run.resume)


@train_app.command("srgan")
@with_run_options
def train_srgan(
    out: Annotated[Path, typer.Option(help="Run folder")],
    init: Annotated[Path, typer.Option(help="SRResNet weights (.safetensors or checkpoint) for the generator")],
    vgg_weights: Annotated[str, typer.Option(help="Local torchvision VGG19 file (vgg19-dcbb9e9d.pth)")],
    data: DataOpt = None,
    val: ValOpt = None,
    scale: MatchesInitOpt = 4,
    steps: StepsOpt = 100_000,
    batch: BatchOpt = 16,
    patch: Annotated[int, typer.Option(help="HR patch size (>= 16 for the discriminator)")] = 96,
    lr: Annotated[float, typer.Option(help="Adam learning rate of G and D")] = 1e-4,
    schedule: ScheduleOpt = "constant",
    vgg_layer: Annotated[str, typer.Option(help="phi_i,j as 'i,j': 5,4 (paper) or 2,2")] = "5,4",
    adv_weight: Annotated[float, typer.Option(help="Weight of the adversarial loss")] = 1e-3,
    allow_random_vgg: Annotated[bool, typer.Option(help="Allow --vgg-weights random (tests only)")] = False,
    *,
    run: RunOptions,
    num_features: MatchesInitOpt = 64,
    num_blocks: MatchesInitOpt = 16,
) -> None:
    """Train SRGAN from SRResNet weights (VGG19 phi_5,4 MSE + 1e-3 adversarial).

    Pretrained VGG19 cannot be downloaded at run time: pass torchvision's file
    (https://download.pytorch.org/models/vgg19-dcbb9e9d.pth) from a local path.

    Example:

      sr-deploy train srgan --init runs/x4/best.safetensors --vgg-weights ~/vgg19-dcbb9e9d.pth --out runs/gan
    """
    if vgg_weights == RANDOM_VGG and not allow_random_vgg:
        raise fail("--vgg-weights random makes the perceptual loss meaningless; it is for tests only and needs "
                   "--allow-random-vgg")
    try:
        layer = tuple(int(v) for v in vgg_layer.split(","))
        if len(layer) != 2:
            raise ValueError(f"--vgg-layer must be 'i,j', got {vgg_layer!r}")
        cfg = run.config(out, data, val, init, scale=scale, steps=steps, batch=batch, patch=patch, lr=lr,
                         schedule=schedule, num_features=num_features, num_blocks=num_blocks)
    except ValueError as exc:
        raise fail(str(exc)) from None
    _run_trainer(SRGANTrainer, cfg, run.resume, vgg_weights=vgg_weights, vgg_layer=layer, adv_weight=adv_weight)


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
    try:
        upscaler = sr.load(run / "best.safetensors")
        evaluation = {}
        for folder in eval_data or []:
            df = sr.evaluate(upscaler, collect_images([folder]))
            evaluation[folder.parent.name if folder.name == "HR" else folder.name] = {
                **mean_scores(df), "images": df.height}
        out = release_run(run, name, evaluation)
    except (FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"released {out} {evaluation}")
