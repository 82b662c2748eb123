"""``sr-deploy info``: what this machine can run, and how well (the facts every measurement here depends on)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sr_deploy.bench.environment import capabilities
from sr_deploy.cli.common import print_table


def info(
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON (for a bug report)")] = False,
) -> None:
    """This machine's CPU class and GPUs, which precisions run natively, how int8 is made here, and every route
    with why it cannot run here.

    Example: sr-deploy info --json > machine.json
    """
    facts = capabilities()
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    cpu = facts["cpu"]
    gpus = ", ".join(g["name"] for g in facts["gpus"]) or "none"
    machine = Table(title="this machine", show_header=False)
    machine.add_column("fact")
    machine.add_column("value")
    rows = [("CPU", f"{cpu['model']}, {cpu['logical_cores']} logical cores ({cpu['affinity_cores']} usable)"),
            ("ISA class", f"{cpu['isa_class']} ({' '.join(cpu['isa']) or 'no flags read'})"), ("GPUs", gpus),
            *((f"precision: {name}", str(value)) for name, value in facts["precisions"].items()),
            ("versions", ", ".join(f"{k} {v}" for k, v in facts["versions"].items())), ("cache", facts["cache"])]
    for name, value in rows:
        machine.add_row(name, escape(value))
    print_table(machine)
    routes = Table(title="routes, fastest first on the reference CPU (`sr-deploy tune MODEL` times them here)")
    for col in ("route", "runs from", "here"):
        routes.add_column(col)
    reasons: dict[str, int] = {}
    for r in facts["routes"]:
        why = r["unavailable"]
        here = "yes" if why is None else f"no [{reasons.setdefault(why, len(reasons) + 1)}]"
        routes.add_row(escape(r["route"]), r["runs_from"], here)
    print_table(routes)
    for why, n in reasons.items():
        typer.echo(f"[{n}] {why}")
