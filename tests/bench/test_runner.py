"""``sr-deploy bench`` from the command line on a tiny model, and its input errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from sr_deploy.bench.results import load_table
from sr_deploy.cli import app


def test_bench_command_torch_only(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "{machine}"
    result = CliRunner().invoke(app, ["bench", "--model", str(tiny_weights), "--backends", "torch", "--precisions",
                                      "fp32", "--sizes", "12x16", "--batches", "1", "--repeats", "3", "--quick",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = Path(result.stdout.strip().splitlines()[-1])
    assert report.name == "report.md" and report.is_file() and "{machine}" not in str(report)
    variants = load_table(report.parent, "variants")
    assert variants["variant"].to_list() == ["torch-fp32", "torch-fp32+channels_last"]
    latency = load_table(report.parent, "latency")
    assert latency.select("batch", "height", "width").rows() == [(1, 12, 16)] * 2
    assert (latency["repeats"] == 3).all() and latency.filter(pl.col("status") != "ok").height == 0


def test_bench_rejects_onnx_as_reference(tiny_onnx: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--model", str(tiny_onnx), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs the PyTorch weights" in result.output


def test_bench_rejects_bad_sizes(tiny_weights: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--model", str(tiny_weights), "--sizes", "12by16"])
    assert result.exit_code == 2 and "HEIGHTxWIDTH" in result.output


def test_bench_names_the_diverging_layer_of_a_broken_onnx(tiny_weights: Path, tiny_onnx: Path,
                                                         tmp_path: Path) -> None:
    from tests.bench.test_divergence import perturb_conv

    broken = tmp_path / "broken.onnx"
    perturb_conv(tiny_onnx, broken, 3)
    result = CliRunner().invoke(app, ["bench", "--model", str(tiny_weights), "--onnx", str(broken), "--backends",
                                      "torch,onnxruntime", "--precisions", "fp32", "--sizes", "12x12", "--batches",
                                      "1", "--quick", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    parity = load_table(tmp_path / "r", "parity").filter(pl.col("variant") == "onnxruntime-fp32").row(0, named=True)
    assert parity["passed"] is False and parity["psnr_db"] < 100
    assert parity["diverging_layer"] == "trunk_tail.1"  # conv #3 = trunk_tail.0, observed after its folded BN
    assert "first diverging layer: conv #3" in (tmp_path / "r" / "report.md").read_text()
