"""What every command module shares: the stderr console, how errors and progress are printed, and the
options several commands declare (one definition each; a command keeps its own help text where its
meaning differs).

Choices in help texts come from the vocabulary the library checks against, so they cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sr_deploy.vocabulary import AUTO, DEVICES

console = Console(stderr=True)


@dataclass
class State:
    """Root options of the app, set by its callback before a command runs."""

    debug: bool = False  #: ``--debug``: let an unexpected exception show its traceback


state = State()


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise (code 2)."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # paths stay whole
    return typer.Exit(2)


def log_text(text: str) -> None:
    """Print a progress line from library code as plain text (``[...]`` in it is not rich markup)."""
    console.print(escape(text), highlight=False, soft_wrap=True)


def print_table(table: Table) -> None:
    """A result table, on stdout (progress and errors go to stderr)."""
    Console().print(table)


def choices(words: Iterable[str], sep: str = " | ") -> str:
    """``a | b | c`` (or ``a,b,c`` with ``sep=","``) for a help text."""
    return sep.join(words)


def paths(folders: Iterable[Path] | None) -> list[str]:
    """Repeatable path options as strings ([] when none were given)."""
    return [str(f) for f in folders or ()]


def output_option(help: str) -> Any:
    """The ``-o/--output`` option, with what the command writes there as its help."""
    return typer.Option("-o", "--output", help=help)


#: ``cpu | cuda | cuda:N``
DEVICE_CHOICES = choices((*DEVICES, "cuda:N"))
#: ``auto | cpu | cuda | cuda:N``
AUTO_DEVICE_CHOICES = choices((AUTO, *DEVICES, "cuda:N"))
#: what a PyTorch model can be given as
WEIGHTS_HELP = "Shipped model name or .safetensors/.pt weights"

WeightsOpt = Annotated[str, typer.Option(help=WEIGHTS_HELP)]
CalibOpt = Annotated[Path | None, typer.Option(help="Calibration HR images; default: embedded")]
CalibImagesOpt = Annotated[int | None, typer.Option(
    help="Draw at most N calibration images at random (those smaller than a crop are then skipped and listed)")]
_psnr_budget = typer.Option(help="int8 accuracy budget (dB of Y-PSNR vs fp32)")
PsnrBudgetOpt = Annotated[float, _psnr_budget]
OptionalPsnrBudgetOpt = Annotated[float | None, _psnr_budget]
SuiteOpt = Annotated[Path | None, typer.Option(help="Suite file (TOML, settings in its 'bench' table)")]
QuickOpt = Annotated[bool, typer.Option(help="Quick bench settings: small sizes, few repeats, two images")]
