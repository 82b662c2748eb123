"""``sr-deploy info [MODEL]``: what this machine can run, and how well (the facts every measurement here depends
on); with a model, what the file is and how it would run here."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sr_deploy.bench.environment import capabilities
from sr_deploy.cli.common import fail, print_table
from sr_deploy.runtime.describe import describe


def info(
    model: Annotated[str | None, typer.Argument(help="Shipped model name, weights, .onnx or .engine file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON (for a bug report)")] = False,
) -> None:
    """This machine's CPU class, GPUs and routes; with MODEL, what it is and the route auto takes for it.

    The machine: which precisions run natively, how int8 is made here, and every route with why it cannot run
    here. MODEL: its kind, precision, descriptor, an int8 file's validation CPU class and what to expect here, and
    the route auto takes by the static ranking (upscale and serve time the routes here instead, once:
    `sr-deploy tune MODEL`).

    Example: sr-deploy info m.int8.onnx --json > facts.json
    """
    try:
        model_facts = describe(model) if model is not None else None
    except (FileNotFoundError, ValueError) as exc:  # ModelFileError (weights, ONNX, sidecar) is a ValueError
        if as_json:  # the bug report still gets the machine, and the model's error in place of its facts
            typer.echo(json.dumps({"machine": capabilities(), "model": {"path": model, "error": str(exc)}}, indent=2))
        raise fail(str(exc)) from None
    machine = capabilities()
    if as_json:
        typer.echo(json.dumps({"machine": machine, "model": model_facts}, indent=2))
        return
    _print_machine(machine)
    if model_facts is not None:
        _print_model(model_facts)


def _facts_table(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("fact")
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(name, escape(value))
    print_table(table)


def _print_machine(facts: dict[str, Any]) -> None:
    cpu = facts["cpu"]
    _facts_table("this machine", [
        ("CPU", f"{cpu['model']}, {cpu['logical_cores']} logical cores ({cpu['affinity_cores']} usable)"),
        ("ISA class", f"{cpu['isa_class']} ({' '.join(cpu['isa']) or 'no flags read'})"),
        ("GPUs", ", ".join(g["name"] for g in facts["gpus"]) or "none"),
        *((f"precision: {name}", str(value)) for name, value in facts["precisions"].items()),
        ("versions", ", ".join(f"{k} {v}" for k, v in facts["versions"].items())), ("cache", facts["cache"])])
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


def _print_model(facts: dict[str, Any]) -> None:
    desc = facts["descriptor"]
    rows = [("file", facts["path"]), ("kind", facts["kind"]),
            ("precision", facts["precision"] or "any float precision (weights)"),
            ("model", f"{desc['name'] or desc['architecture']} ({desc['architecture']}, loaded by {desc['loader']}), "
                      f"x{desc['scale']}, {desc['in_channels']} -> {desc['out_channels']} channels"),
            ("tiling halo", f"{facts['receptive_radius_lr_px']} LR pixels ({desc['tiling']})")]
    if desc.get("fixed_size"):
        height, width = desc["fixed_size"]
        rows.append(("input size", f"fixed {height}x{width}: other sizes are tiled into windows of it"))
    if "int8" in facts:
        int8 = facts["int8"]
        drop = "not recorded" if int8["recorded_drop_db"] is None else f"{int8['recorded_drop_db']:.3f} dB"
        vnni = {True: "with VNNI", False: "without VNNI", None: "VNNI not recorded"}[int8["validated_vnni"]]
        rows += [("int8", f"{int8['layout']} layout, {int8['weight_bits']}-bit weights"),
                 ("validated on", f"{int8['validated_isa'] or 'not recorded'} ({vnni}) with "
                                  f"{int8['validated_engine'] or 'an engine not recorded'}, Y-PSNR drop {drop}"),
                 ("here", int8["here"])]
    rows += [("auto, ranked", facts["auto"]["reason"]),
             ("auto, timed", "upscale and serve time every route here on the job's shape once (cached) and may "
                             "pick another; `sr-deploy tune MODEL` shows the table")]
    _facts_table("model", rows)
