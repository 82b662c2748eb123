"""Planning, naming, opening and releasing bench variants (real weights, real ONNX Runtime sessions)."""

from __future__ import annotations

import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.bench.config import BenchConfig
from sr_deploy.bench.variants import NO_ONNX, REFERENCE, Variant, plan_variants, unique_names


def names_of(sources: list[str]) -> list[str]:
    variants = [Variant("onnxruntime-int8", "onnxruntime", "int8", s) for s in sources]
    unique_names(variants)
    return [v.name for v in variants]


def test_unique_names_tell_files_apart_by_stem() -> None:
    assert names_of(["runs/a/int8-plain.onnx", "runs/a/int8-budget.onnx"]) == [
        "onnxruntime-int8 (int8-plain)", "onnxruntime-int8 (int8-budget)"]


def test_unique_names_use_the_folder_when_stems_repeat() -> None:
    assert names_of(["runs/a/model.onnx", "runs/b/model.onnx", "runs/b/other.onnx"]) == [
        "onnxruntime-int8 (a/model)", "onnxruntime-int8 (b/model)", "onnxruntime-int8 (other)"]


def test_unique_names_number_the_same_file_given_twice() -> None:
    assert names_of(["m.onnx", "m.onnx"]) == ["onnxruntime-int8 (m)", "onnxruntime-int8 (m)#2"]


def test_unique_names_leave_distinct_names_alone() -> None:
    variants = [Variant(REFERENCE, "torch", "fp32", "w.safetensors"),
                Variant("onnxruntime-fp32", "onnxruntime", "fp32", "x.onnx")]
    unique_names(variants)
    assert [v.name for v in variants] == [REFERENCE, "onnxruntime-fp32"]


def test_plan_reads_precision_without_loading_and_names_files(random_tiny_weights: Path, random_tiny_onnx: Path,
                                                              tmp_path: Path) -> None:
    copy = shutil.copy(random_tiny_onnx, tmp_path / "copy.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file")
    config = BenchConfig(model=str(random_tiny_weights), onnx=(str(random_tiny_onnx), str(copy), str(garbage)),
                         backends=("torch", "onnxruntime"), precisions=("fp32",))
    variants = plan_variants(config)
    assert [v.name for v in variants] == [REFERENCE, "torch-fp32+channels_last",
                                          f"onnxruntime-fp32 ({random_tiny_onnx.stem})", "onnxruntime-fp32 (copy)",
                                          "onnxruntime-?"]
    assert all(v.load_s is None and v.device is None for v in variants)  # planned, nothing loaded
    bad = variants[-1]
    assert bad.status == "failed" and str(garbage) in bad.reason and bad.open() is None


def test_an_onnx_backend_without_an_onnx_file_is_said(random_tiny_weights: Path) -> None:
    config = BenchConfig(model=str(random_tiny_weights), backends=("torch", "onnxruntime", "openvino"),
                         precisions=("fp32", "int8"))
    missing = [(v.name, v.status) for v in plan_variants(config) if v.backend != "torch"]
    assert missing == [("onnxruntime-fp32", "not available"), ("onnxruntime-int8", "not available"),
                       ("openvino-fp32", "not available"), ("openvino-int8", "not available")]  # they were left out
    assert all(v.reason == NO_ONNX for v in plan_variants(config) if v.backend != "torch")


def test_open_then_close_releases_the_session(random_tiny_weights: Path, random_tiny_onnx: Path) -> None:
    config = BenchConfig(model=str(random_tiny_weights), onnx=(str(random_tiny_onnx),),
                         backends=("torch", "onnxruntime"), precisions=("fp32",))
    v = plan_variants(config)[-1]
    with v.opened() as up:
        assert isinstance(up, OrtUpscaler) and up.session is not None
        assert v.device == "cpu" and v.load_s is not None and v.row()["device"] == "cpu"
        alive = weakref.ref(up.session)
    assert alive() is None and up.session is None  # nothing else holds the session
    with pytest.raises(RuntimeError, match="is closed"):
        up.run(np.zeros((1, 3, 8, 8), dtype=np.float32))
    assert v.row()["device"] == "cpu"  # the table still says where it ran
