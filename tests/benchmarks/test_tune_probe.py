"""benchmarks/tune_probe.py: every route timed on the probe shapes and on the job's window, the picks compared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.helpers import save_tiny_model

REPO = Path(__file__).resolve().parents[2]


def test_tune_probe_table(tmp_path: Path) -> None:
    weights = save_tiny_model(tmp_path / "tiny.safetensors")
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "tune_probe.py"), "--model", str(weights), "--size", "24x40",
         "--probe", "12x12", "--max-psnr-drop", "0", "--budget", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "SR_DEPLOY_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    table = pl.read_csv(out / "tune_probe.csv")
    assert set(table["shape"]) == {"12x12", "24x40"} and set(table["option"]) == {"fp32"}  # budget 0: fp32 only
    routes = set(table.filter(pl.col("shape") == "12x12")["route"])
    assert routes == set(table.filter(pl.col("shape") == "24x40")["route"]) and len(routes) >= 3  # the same routes
    assert (table["p50_ms"] > 0).all() and (table["runs"] >= 2).all()
    text = (out / "tune_probe.md").read_text()
    summary_table = text.split("| probe |")[1].split("\n\n")[0]
    summary = {row[0]: row for row in (line.strip("| ").split(" | ") for line in summary_table.splitlines()[2:])}
    for shape, row in (("12x12", summary["12x12"]), ("24x40", summary["24x40 (the job's window)"])):
        fastest = table.filter(pl.col("shape") == shape).sort("p50_ms")["route"][0]
        assert row[1] == f"{fastest} (fp32)"  # the runtime's own choice from the same measurements
    assert float(summary["24x40 (the job's window)"][-1]) == 1.0
    assert float(summary["12x12"][-1]) >= 1.0
    assert "1 window(s) of 24x40" in text and "--probe 12x12" in text
