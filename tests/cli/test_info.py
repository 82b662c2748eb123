"""``sr-deploy info``: this machine's facts, as a table and as JSON."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from sr_deploy.cli import app
from sr_deploy.hardware import this_cpu


def test_info_json_is_this_machine() -> None:
    result = CliRunner().invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)["machine"]
    cpu = this_cpu()
    assert facts["cpu"]["model"] == cpu.model and facts["cpu"]["isa_class"] == cpu.isa
    assert facts["int8_weight_bits"] == (8 if cpu.vnni else 7)
    assert any(r["unavailable"] is None for r in facts["routes"])  # torch fp32 on the CPU at least
    assert json.loads(result.stdout)["model"] is None


def test_info_table_footnotes_every_route_that_cannot_run() -> None:
    result = CliRunner().invoke(app, ["info"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    facts = json.loads(CliRunner().invoke(app, ["info", "--json"]).stdout)["machine"]
    text = result.stdout
    assert this_cpu().isa in text and "precision: bf16" in text
    cited = set(re.findall(r"no \[(\d+)\]", text))
    notes = dict(re.findall(r"^\[(\d+)\] (.+)$", text, flags=re.MULTILINE))
    assert cited == set(notes)  # every cited reason is printed once, and only those
    assert set(notes.values()) == {r["unavailable"] for r in facts["routes"] if r["unavailable"]}
    assert len(re.findall(r"│ yes\s+│", text)) == sum(r["unavailable"] is None for r in facts["routes"])
