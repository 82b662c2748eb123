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
         "--probe", "12x12", "--max-psnr-drop", "1", "--budget", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "SR_DEPLOY_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    table = pl.read_csv(out / "tune_probe.csv")
    assert set(table["shape"]) == {"12x12", "24x40"} and "fp32" in set(table["option"])
    for option in set(table["option"]):  # every route of every option weighed, timed on both shapes
        routes = table.filter(pl.col("option") == option)
        assert sorted(routes.filter(pl.col("shape") == "12x12")["route"]) == sorted(
            routes.filter(pl.col("shape") == "24x40")["route"])
    assert table.filter(pl.col("option") == "fp32").height >= 6  # torch, onnxruntime, openvino on each shape
    assert (table["p50_ms"] > 0).all() and (table["runs"] >= 2).all()
    text = (out / "tune_probe.md").read_text()
    summary_table = text.split("| decision |")[1].split("\n\n")[0]
    summary = {(row[0], row[1]): row for row in (line.strip("| ").split(" | ")
                                                 for line in summary_table.splitlines()[2:])}
    assert {d for d, _ in summary} == {"no budget (fp32)", "--max-psnr-drop 1"}
    for (decision, probe), row in summary.items():
        shape = probe.split(" ")[0]
        weighed = table.filter((pl.col("shape") == shape) & pl.col("usable"))
        if decision.startswith("no budget"):
            weighed = weighed.filter(pl.col("option") == "fp32")
        picked = {f"{r['route']} ({r['option']})": r["p50_ms"] for r in weighed.iter_rows(named=True)}[row[2]]
        assert picked <= weighed["p50_ms"].min() + 0.1  # the fastest of these (the table rounds to 0.1 ms)
        assert float(row[-1]) >= 1.0 and (probe.endswith("(the job's window)") <= (float(row[-1]) == 1.0))
    assert "1 window(s) of 24x40" in text and "--probe 12x12" in text
