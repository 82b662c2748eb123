"""``sr-deploy export fp16`` end to end (Typer's CliRunner, a real ONNX file): what it keeps and why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper
from typer.testing import CliRunner

from sr_deploy.cli import app
from tests.export.test_fp16_search import sr_model

runner = CliRunner()


def test_export_fp16_prints_the_kept_nodes_and_why(tmp_path: Path) -> None:
    nodes = [helper.make_node("ReduceSum", ["lr", "axes"], ["total"], name="total", keepdims=1),
             helper.make_node("Mul", ["total", "tiny"], ["context"], name="context"),
             helper.make_node("Add", ["lr", "context"], ["mixed"], name="mix")]
    inits = {"axes": np.array([1, 2, 3], dtype=np.int64), "tiny": np.array(1e-7, dtype=np.float32)}
    onnx.save(sr_model(nodes, inits, "mixed"), str(tmp_path / "m.onnx"))
    out = tmp_path / "m.fp16.onnx"
    args = ["export", "fp16", str(tmp_path / "m.onnx"), "-o", str(out), "--calib-images", "1"]
    result = runner.invoke(app, [*args, "--large-size", "256", "--max-psnr-drop", "0.05"])
    assert result.exit_code == 0, result.output
    assert "kept in fp32: 2 node(s)" in result.stderr
    assert "total: overflow: writes total |x|" in result.stderr and "at 1x3x256x256" in result.stderr
    assert "context: reads-overflow: reads total" in result.stderr
    assert "Y-PSNR drop" in result.stderr and "(budget 0.05;" in result.stderr and out.is_file()
    small = runner.invoke(app, [*args, "--large-size", "0"])
    assert small.exit_code == 0 and "kept in fp32: 0 node(s)" in small.stderr  # 48x48 crops never overflow
    bad = runner.invoke(app, [*args, "--margin", "0.5"])
    assert bad.exit_code != 0 and "margin must be >= 1" in bad.output
