"""benchmarks/gpu_check.py runs on a CPU-only machine and reports every GPU path as not available."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the real check applies")
def test_gpu_check_degrades_to_not_available_on_cpu(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(out), "--wheels", str(wheels),
         "--num-blocks", "1", "--num-features", "8", "--size", "16", "--runs", "1", "--warmup", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "results.json").read_text())
    paths = {p["path"]: p for p in report["paths"]}
    expected = {"torch-cuda-fp32", "torch-cuda-fp16+cudagraph", "onnxruntime-cuda-int8", "tensorrt-fp16",
                "tensorrt-fp16+cudagraph", "tensorrt-int8-zero-copy"}
    assert expected <= set(paths)
    assert all(p["status"] == "not available" and p["reason"] for p in paths.values())
    assert "TensorRT is not available" in paths["tensorrt-fp16"]["reason"]
    assert report["wheels"] == {} and report["exports"] == {}  # nothing on the GPU could use an export
    assert paths["tensorrt-int8-modelopt"]["status"] == "not available"
    assert all(v.startswith("not available: TensorRT is not available") for v in report["tensorrt_layers"].values())
    assert pl.read_csv(out / "results.csv").height == len(paths)
    lines = proc.stdout.splitlines()
    assert "tensorrt-fp16: not available: TensorRT is not available: " in "\n".join(lines)


def _gpu_check_module() -> object:
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gpu_check", module)  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_check_uses_the_one_comparator_on_the_unit_scale() -> None:
    ref = np.random.default_rng(0).uniform(0.2, 0.8, (1, 3, 16, 16)).astype(np.float32)
    psnr_db, max_abs, passed = _gpu_check_module().check(ref, ref + np.float32(0.01), "fp16")  # type: ignore[attr-defined]
    assert psnr_db == pytest.approx(20 * np.log10(1 / 0.01), abs=0.01)  # 40 dB, not 40 + 48 dB
    assert max_abs == pytest.approx(0.01, abs=1e-6)
    assert not passed  # fp16 must reach 50 dB against torch fp32
    assert _gpu_check_module().check(ref, ref + np.float32(0.01), "int8")[2]  # type: ignore[attr-defined]


def test_gpu_check_writes_results_when_it_stops_early(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(out),
         "--model", str(tmp_path / "missing.safetensors"), "--size", "16", "--runs", "1", "--warmup", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    report = json.loads((out / "results.json").read_text())
    assert "missing.safetensors" in report["error"] and "environment" in report
    assert "stopped early: " in proc.stdout
