"""The ``sr-deploy`` command line (typer). Thin: parse, call one library function, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

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
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="'bicubic', a shipped model name, .safetensors/.pt weights or .onnx")],
    data: Annotated[Optional[list[Path]], typer.Option(help="Folder(s) of HR images; default: embedded images")] = None,
    scale: Annotated[int, typer.Option(help="Upscaling factor (bicubic only; models carry their own)")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object to stdout")] = False,
) -> None:
    """Y-channel PSNR/SSIM against HR ground truth (modcrop, MATLAB bicubic LR, shave = scale).

    Examples:

      sr-deploy evaluate --model bicubic --data ../shared/datasets/Set5/HR --scale 4

      sr-deploy evaluate --model srresnet-x4 --json
    """
    from sr_deploy.bench.accuracy import evaluate as run_evaluate
    from sr_deploy.data.datasets import collect_images
    from sr_deploy.data.image_io import ImageReadError
    from sr_deploy.runtime import load

    try:
        images = collect_images([str(d) for d in data] if data else None, split="eval")
        upscaler = load(model, scale=scale)
        with console.status(f"evaluating {upscaler.name}"):
            df = run_evaluate(upscaler, images)
    except (FileNotFoundError, ValueError, ImageReadError) as exc:
        raise fail(str(exc)) from None
    mean = {k: float(df[k].mean()) for k in ("psnr_y", "ssim_y")}  # type: ignore[arg-type]
    if as_json:
        obj = {"model": model, "scale": upscaler.scale, "images": df.to_dicts(), "mean": mean}
        typer.echo(json.dumps(obj))
        return
    table = Table(title=f"{model} x{upscaler.scale} (Y channel, shave {upscaler.scale})")
    table.add_column("image")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    for row in df.iter_rows(named=True):
        table.add_row(row["name"], f"{row['psnr_y']:.2f}", f"{row['ssim_y']:.4f}")
    table.add_row("[bold]mean", f"[bold]{mean['psnr_y']:.2f}", f"[bold]{mean['ssim_y']:.4f}")
    Console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
