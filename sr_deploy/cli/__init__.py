"""The ``sr-deploy`` command line (typer): a thin client of the Python API. Each command parses its
options, calls one library function and prints the result; errors exit with code 2. An unexpected
exception escaping a command is printed as one ``error:`` line (exit 1) by :func:`main`, the entry
point, unless ``--debug`` asks for its traceback.

The commands live by job: :mod:`~sr_deploy.cli.evaluate` (evaluate, bench, report),
:mod:`~sr_deploy.cli.train` (train srresnet | srgan | release), :mod:`~sr_deploy.cli.export`
(export onnx | fp16 | int8, build), :mod:`~sr_deploy.cli.upscale` (upscale, tune, pipeline, demo),
:mod:`~sr_deploy.cli.serve` (serve) and :mod:`~sr_deploy.cli.info` (info: this machine's facts), with
what they share in :mod:`~sr_deploy.cli.common`. This module only assembles them into :data:`app`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from sr_deploy.cli import evaluate, export, info, serve, train, upscale
from sr_deploy.cli.common import console, state

app = typer.Typer(
    help="sr-deploy: super-resolution models from training to verified FP32/FP16/INT8 inference.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error")] = False,
) -> None:
    """sr-deploy: super-resolution models from training to verified FP32/FP16/INT8 inference."""
    state.debug = debug


for command in (evaluate.evaluate, export.build, evaluate.bench, evaluate.report, upscale.pipeline, upscale.demo,
                upscale.upscale):
    app.command()(command)
app.command("tune")(upscale.tune_command)
app.command("info")(info.info)
app.command("serve")(serve.serve)
app.add_typer(train.train_app, name="train")
app.add_typer(export.export_app, name="export")


def main() -> None:
    """The ``sr-deploy`` entry point: :data:`app`, with an unexpected exception reported in one line
    (exit 1) instead of a traceback unless ``--debug`` was given. Ctrl-C (SIGINT) stops with ``interrupted``
    and exit code 130 (128 + SIGINT, the shell's convention); what was written before stays whole (every
    output is written atomically) and the file in progress is not left half-written. Exits pass through."""
    state.debug = False
    try:
        app()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        if state.debug:
            raise
        console.print("[bold red]interrupted[/] (outputs written so far are complete)", highlight=False)
        sys.exit(130)
    except Exception as exc:
        if state.debug:
            raise
        console.print(f"[bold red]error:[/] {escape(type(exc).__name__)}: {escape(str(exc))} "
                      "(run with --debug for the traceback)", highlight=False, soft_wrap=True)
        sys.exit(1)
