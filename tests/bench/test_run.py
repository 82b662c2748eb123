"""``sr-deploy bench`` from the command line on a tiny model, and its input errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from sr_deploy.bench.config import BenchConfig
from sr_deploy.bench.results import load_table
from sr_deploy.bench.variants import EMULATED
from sr_deploy.cli import app
from sr_deploy.export.onnx import export_onnx
from sr_deploy.runtime.select import machine_facts
from tests.helpers import perturb_conv


def test_bench_command_torch_only(random_tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "{machine}"
    result = CliRunner().invoke(app, ["bench", "--model", str(random_tiny_weights), "--backends", "torch",
                                      "--precisions", "fp32", "--sizes", "12x16", "--batches", "1", "--repeats", "3",
                                      "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = Path(result.stdout.strip().splitlines()[-1])
    assert report.name == "report.md" and report.is_file() and "{machine}" not in str(report)
    variants = load_table(report.parent, "variants")
    assert variants["variant"].to_list() == ["torch-fp32", "torch-fp32+channels_last"]
    latency = load_table(report.parent, "latency")
    assert latency.select("batch", "height", "width").rows() == [(1, 12, 16)] * 2
    assert (latency["repeats"] == 3).all() and latency.filter(pl.col("status") != "ok").height == 0


def test_bench_rejects_onnx_as_reference(random_tiny_onnx: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--model", str(random_tiny_onnx), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "needs the PyTorch weights" in result.output


def test_bench_rejects_bad_sizes(random_tiny_weights: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--model", str(random_tiny_weights), "--sizes", "12by16"])
    assert result.exit_code == 2 and "HEIGHTxWIDTH" in result.output


def test_bench_names_the_diverging_layer_of_a_broken_onnx(random_tiny_weights: Path, random_tiny_onnx: Path,
                                                         tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    perturb_conv(random_tiny_onnx, broken, 3)
    result = CliRunner().invoke(app, ["bench", "--model", str(random_tiny_weights), "--onnx", str(broken), "--backends",
                                      "torch,onnxruntime", "--precisions", "fp32", "--sizes", "12x12", "--batches",
                                      "1", "--quick", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    parity = load_table(tmp_path / "r", "parity").filter(pl.col("variant") == "onnxruntime-fp32").row(0, named=True)
    assert parity["passed"] is False and parity["psnr_db"] < 100
    assert parity["diverging_layer"] == "trunk_tail.1"  # conv #3 = trunk_tail.0, observed after its folded BN
    assert "first diverging layer: conv #3" in (tmp_path / "r" / "report.md").read_text()


def test_bench_holds_one_variant_at_a_time(random_tiny_weights: Path, random_tiny_onnx: Path, tmp_path: Path) -> None:
    import gc
    import shutil

    from sr_deploy.backends.base import Upscaler
    from sr_deploy.backends.bicubic import BicubicUpscaler
    from sr_deploy.bench.run import run_bench
    from tests.bench.conftest import SMALL_BENCH

    copy = shutil.copy(random_tiny_onnx, tmp_path / "copy.onnx")
    live: list[list[str]] = []

    def log(_line: str) -> None:  # called while each variant is being measured
        models = [o for o in gc.get_objects() if issubclass(type(o), Upscaler) and type(o) is not BicubicUpscaler
                  and not o._closed]
        live.append([m.name for m in models])

    config = BenchConfig(model=str(random_tiny_weights), onnx=(str(random_tiny_onnx), str(copy)),
                         backends=("torch", "onnxruntime"), **SMALL_BENCH)
    run_bench(config, tmp_path / "r", log=log)
    assert max(len(names) for names in live) == 1
    assert {n for names in live for n in names} >= {"torch-fp32", "onnxruntime-fp32[CPU]"}
    variants = load_table(tmp_path / "r", "variants")
    assert variants.filter(pl.col("backend") == "onnxruntime")["variant"].to_list() == [
        f"onnxruntime-fp32 ({random_tiny_onnx.stem})", "onnxruntime-fp32 (copy)"]
    ran = variants.filter(pl.col("status") == "ok")
    assert (ran["device"] == "cpu").all() and ran["load_s"].is_not_null().all()
    skipped = variants.filter(pl.col("status") != "ok")  # bf16 on a CPU that only emulates it (AVX2), and nothing else
    assert skipped["variant"].to_list() == ([] if machine_facts().cpu_bf16 else ["torch-bf16+channels_last"])
    assert (skipped["reason"] == EMULATED).all() and skipped["load_s"].is_null().all()
    latency = load_table(tmp_path / "r", "latency")
    assert (latency["peak_rss_mb"] - latency["rss_increase_mb"] > 50).all()  # the process baseline: python, torch
    assert sorted(p.name for p in (tmp_path / "r" / "crops").iterdir()) == ["bicubic.png", "fp32.png", "hr.png"]


def test_bench_log_keeps_brackets(random_tiny_weights: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad[gpu].onnx"
    bad.write_bytes(b"not an onnx file")
    result = CliRunner().invoke(app, ["bench", "--model", str(random_tiny_weights), "--onnx", str(bad), "--backends",
                                      "torch,onnxruntime", "--precisions", "fp32", "--sizes", "12x12", "--batches",
                                      "1", "--quick", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert f"onnxruntime-?: failed: ModelFileError: {bad} is not a readable ONNX file" in result.output


def test_bench_runs_a_fixed_size_export_tiled(random_tiny_weights: Path, tmp_path: Path) -> None:
    static = export_onnx(random_tiny_weights, tmp_path / "static.onnx", static=(40, 40)).path
    result = CliRunner().invoke(app, ["bench", "--model", str(random_tiny_weights), "--onnx", str(static),
                                      "--backends", "torch,onnxruntime", "--precisions", "fp32", "--sizes",
                                      "40x40,12x16", "--batches", "1", "--quick", "--tiling-sizes", "none", "--out",
                                      str(tmp_path / "r")])
    assert result.exit_code == 0, result.output  # it stopped the whole bench with ONNX Runtime's shape error
    parity = load_table(tmp_path / "r", "parity").filter(pl.col("variant") == "onnxruntime-fp32").row(0, named=True)
    assert parity["status"] == "ok" and parity["passed"] is True  # the parity inputs, tiled into 40x40 windows
    latency = load_table(tmp_path / "r", "latency").filter(pl.col("variant") == "onnxruntime-fp32")
    assert dict(zip(latency["height"], latency["status"], strict=True)) == {
        40: "ok", 12: "not available: 1x3x12x16 outside the accepted shapes"}
    accuracy = load_table(tmp_path / "r", "accuracy").filter(pl.col("variant") == "onnxruntime-fp32")
    assert accuracy.height > 0 and (accuracy["status"] == "ok").all()
