"""Results folders: tables and report of a real run, regeneration, comparison and "not available" rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from sr_deploy.bench.report import compare_runs, write_report
from sr_deploy.bench.results import TABLES, load_json, load_table, save_table
from sr_deploy.cli import app


def copy_results(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_results_folder_has_every_table(bench_results: Path) -> None:
    for name in TABLES:
        assert (bench_results / f"{name}.parquet").is_file() and (bench_results / f"{name}.csv").is_file()
    env = load_json(bench_results, "environment")
    assert env["cpu"]["model"] and "threads" in env
    variants = load_table(bench_results, "variants")
    assert variants["variant"][0] == "torch-fp32"
    assert {"torch-fp32+channels_last", "torch-bf16+channels_last", "onnxruntime-fp32"} <= set(variants["variant"])
    parity = load_table(bench_results, "parity")
    ort = parity.filter(pl.col("variant") == "onnxruntime-fp32").row(0, named=True)
    assert ort["passed"] and ort["psnr_db"] >= 100.0  # fp32 ONNX reproduces torch fp32
    latency = load_table(bench_results, "latency").filter(pl.col("status") == "ok")
    assert set(zip(latency["batch"], latency["height"], strict=True)) == {(1, 16), (2, 16)}
    accuracy = load_table(bench_results, "accuracy").filter(pl.col("status") == "ok")
    assert {"bicubic", "torch-fp32", "onnxruntime-fp32"} <= set(accuracy["variant"])
    assert (bench_results / "crops" / "hr.png").is_file() and (bench_results / "crops" / "fp32.png").is_file()


def test_unavailable_variants_are_reported_without_numbers(bench_results: Path) -> None:
    variants = load_table(bench_results, "variants").filter(pl.col("backend") == "tensorrt")
    if variants.height == 0 or (variants["status"] == "ok").any():
        pytest.skip("TensorRT runs on this machine")
    assert (variants["status"] == "not available").all() and variants["reason"].str.len_chars().min() > 0
    latency = load_table(bench_results, "latency").filter(pl.col("backend") == "tensorrt")
    assert latency.height > 0 and latency["status"].str.starts_with("not available: ").all()
    assert latency["p50_ms"].is_null().all() and latency["mp_per_s"].is_null().all()
    parity = load_table(bench_results, "parity").filter(pl.col("backend") == "tensorrt")
    assert parity["psnr_db"].is_null().all()
    report = (bench_results / "report.md").read_text()
    assert "not available: " in report and "tensorrt-fp32" in report


def test_report_is_regenerated_from_saved_results(bench_results: Path, tmp_path: Path) -> None:
    d = copy_results(bench_results, tmp_path / "r")
    original = (d / "report.md").read_text()
    (d / "report.md").unlink()
    shutil.rmtree(d / "plots")
    result = CliRunner().invoke(app, ["report", str(d)])
    assert result.exit_code == 0, result.output
    assert (d / "report.md").read_text() == original
    for png in ("latency.png", "tradeoff.png", "crops.png"):
        assert (d / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for section in ("## Environment", "## Parity against torch fp32", "## Accuracy", "## Latency"):
        assert section in original


def test_identical_results_compare_clean(bench_results: Path) -> None:
    assert compare_runs(bench_results, bench_results).regressions == []
    result = CliRunner().invoke(app, ["report", "--compare", str(bench_results), str(bench_results)])
    assert result.exit_code == 0, result.output
    # thresholds are checked and belong to --compare (a negative one made everything a regression; one given
    # without --compare was ignored)
    negative = CliRunner().invoke(app, ["report", "--compare", str(bench_results), str(bench_results),
                                        "--max-latency-regression", "-1"], env={"COLUMNS": "200"})
    assert negative.exit_code == 2 and "max-latency-regression" in " ".join(negative.output.split())
    alone = CliRunner().invoke(app, ["report", str(bench_results), "--max-psnr-drop", "0.1"])
    assert alone.exit_code == 2 and "thresholds of --compare" in alone.output


def test_latency_regression_exits_non_zero(bench_results: Path, tmp_path: Path) -> None:
    new = copy_results(bench_results, tmp_path / "new")
    lat = load_table(new, "latency")
    slower = (pl.col("variant") == "onnxruntime-fp32") & (pl.col("batch") == 1)
    save_table(lat.with_columns(pl.when(slower).then(pl.col("p50_ms") * 1.25).otherwise(pl.col("p50_ms"))
                                .alias("p50_ms")), new, "latency")
    found = compare_runs(bench_results, new, max_latency_regression=0.1).regressions
    assert len(found) == 1 and "onnxruntime-fp32 1x16x16" in found[0]
    assert compare_runs(bench_results, new, max_latency_regression=0.3).regressions == []
    result = CliRunner().invoke(app, ["report", "--compare", str(bench_results), str(new),
                                      "--max-latency-regression", "0.1"])
    assert result.exit_code == 1 and "onnxruntime-fp32 1x16x16" in result.output


def test_psnr_drop_and_parity_loss_are_regressions(bench_results: Path, tmp_path: Path) -> None:
    new = copy_results(bench_results, tmp_path / "new")
    acc = load_table(new, "accuracy")
    save_table(acc.with_columns(pl.when(pl.col("variant") == "onnxruntime-fp32").then(pl.col("psnr_y") - 0.1)
                                .otherwise(pl.col("psnr_y")).alias("psnr_y")), new, "accuracy")
    par = load_table(new, "parity")
    # a variant that runs and passes on every CPU class (torch bf16 is skipped where it is only emulated)
    assert par.filter(pl.col("variant") == "torch-fp32+channels_last")["passed"].to_list() == [True]
    save_table(par.with_columns(pl.when(pl.col("variant") == "torch-fp32+channels_last").then(False)
                                .otherwise(pl.col("passed")).alias("passed")), new, "parity")
    found = compare_runs(bench_results, new, max_psnr_drop=0.05).regressions
    assert any(r.startswith("accuracy onnxruntime-fp32") for r in found)
    assert any(r.startswith("parity torch-fp32+channels_last") for r in found)
    result = CliRunner().invoke(app, ["report", "--compare", str(bench_results), str(new)])
    assert result.exit_code == 1


def test_incomplete_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "variants.parquet does not exist" in result.output
    with pytest.raises(FileNotFoundError, match="not a complete sr-deploy results folder"):
        write_report(tmp_path)
