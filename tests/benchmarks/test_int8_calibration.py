"""benchmarks/int8_calibration.py: every plain calibration method x layout, exported and scored for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

from sr_deploy.data.datasets import embedded_images
from sr_deploy.data.image_io import read_image, write_image
from sr_deploy.export.onnx import export_onnx
from tests.helpers import save_tiny_model

REPO = Path(__file__).resolve().parents[2]


def _folder(path: Path, split: str, count: int) -> Path:
    path.mkdir()
    for p in embedded_images(split)[:count]:
        write_image(path / f"{p.stem}.png", read_image(p))
    return path


def test_int8_calibration_table(tmp_path: Path) -> None:
    weights = save_tiny_model(tmp_path / "tiny.safetensors")
    fp32 = export_onnx(weights, tmp_path / "tiny.onnx").path
    calib, data = _folder(tmp_path / "calib", "train", 2), _folder(tmp_path / "Set1", "eval", 1)
    out = tmp_path / "results"
    common = [str(fp32), "--calib", str(calib), "--data", str(data), "--work", str(tmp_path / "work")]

    def run(*args: str) -> None:
        proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "int8_calibration.py"), *common, *args],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr

    run("--out", str(out))
    table = pl.read_csv(out / "int8_calibration.csv")
    assert table.height == 7 and set(table["dataset"]) == {"Set1"}  # fp32 + 2 layouts x 3 methods
    assert table.filter(pl.col("layout") == "fp32")["drop_db"].to_list() == [0.0]
    int8 = table.filter(pl.col("layout") != "fp32")
    assert sorted(set(int8["method"])) == ["entropy", "minmax", "percentile"]
    assert int8["drop_db"].is_finite().all() and int8["drop_db"].n_unique() > 1  # the methods really differ
    assert len(list((tmp_path / "work").glob("int8-*.onnx"))) == 6
    text = (out / "int8_calibration.md").read_text()
    assert text.count("\n| ") == 7  # header + 6 rows
    assert "(2 images used, 8 crops of 48x48, sr-deploy export int8 defaults)" in text  # from the files' record

    # the two-step form (files made here, scored elsewhere, e.g. under tests/emulate_cpu.sh): --export-only makes
    # the one missing file (7-bit ort-cpu weights) and scores nothing; the scoring run reuses the files on both engines
    subset = ["--target", "ort-cpu", "--method", "minmax", "--weights", "8bit", "--weights", "7bit"]
    run(*subset, "--export-only")
    assert len(list((tmp_path / "work").glob("int8-*.onnx"))) == 7 and not (tmp_path / "two").exists()
    run(*subset, "--engine", "onnxruntime", "--engine", "openvino", "--out", str(tmp_path / "two"))
    two = pl.read_csv(tmp_path / "two" / "int8_calibration.csv").filter(pl.col("layout") != "fp32")
    assert sorted(zip(two["engine"], two["weights"], strict=True)) == [
        ("onnxruntime", "7bit"), ("onnxruntime", "8bit"), ("openvino", "7bit"), ("openvino", "8bit")]
    assert two["drop_db"].is_finite().all()
