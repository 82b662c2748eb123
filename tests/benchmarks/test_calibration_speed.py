"""benchmarks/calibration_speed.py: both threshold searches timed on one calibration pass, their choices compared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

from tests.helpers import save_tiny_model

REPO = Path(__file__).resolve().parents[2]


def test_calibration_speed_table(tmp_path: Path) -> None:
    weights = save_tiny_model(tmp_path / "tiny.safetensors")
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "calibration_speed.py"), "--model", str(weights),
                           "--calib-images", "1", "--bins", "256", "--rounds", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    table = pl.read_csv(out / "calibration_speed.csv")
    assert table["search"].to_list() == ["onnxruntime", "sr-deploy"]
    tensors = table["tensors"][0]
    assert tensors >= 10 and (table["tensors"] == tensors).all() and (table["bins"] == 256).all()
    assert (table["same_thresholds"] == f"{tensors}/{tensors}").all()  # exactly ORT's choice on every tensor
    assert (table["best_s"] > 0).all() and all(len(r.split(" / ")) == 2 for r in table["rounds_s"])
    assert table["speedup"][0] == 1.0
    text = (out / "calibration_speed.md").read_text()
    assert "--calib-images 1 --bins 256 --rounds 2" in text and " cores." in text
