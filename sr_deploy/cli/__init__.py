"""The ``sr-deploy`` command line (typer): a thin client of the Python API. Each command parses its
options, calls one library function and prints the result; errors exit with code 2.

The commands live by job: :mod:`~sr_deploy.cli.evaluate` (evaluate, bench, report),
:mod:`~sr_deploy.cli.train` (train srresnet | srgan | release), :mod:`~sr_deploy.cli.export`
(export onnx | fp16 | int8, build) and :mod:`~sr_deploy.cli.upscale` (upscale, pipeline, demo), with
what they share in :mod:`~sr_deploy.cli.common`. This module only assembles them into :data:`app`.
"""

from __future__ import annotations

import typer

from sr_deploy.cli import evaluate, export, train, upscale

app = typer.Typer(
    help="sr-deploy: super-resolution models from training to verified FP32/FP16/INT8 inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """sr-deploy: super-resolution models from training to verified FP32/FP16/INT8 inference."""


for command in (evaluate.evaluate, export.build, evaluate.bench, evaluate.report, upscale.pipeline, upscale.demo,
                upscale.upscale):
    app.command()(command)
app.command("tune")(upscale.tune_command)
app.add_typer(train.train_app, name="train")
app.add_typer(export.export_app, name="export")


def main() -> None:
    app()
