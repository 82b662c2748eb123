"""The Triton model repository hand-off: config.pbtxt parsed with Triton's own ModelConfig schema
(``tritonclient``), shapes from the artifact. Triton itself is not run here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from sr_deploy.backends.trt_metadata import BuildOptions, EngineMetadata, write_metadata
from sr_deploy.backends.trt_profiles import Profile
from sr_deploy.errors import ExportError
from sr_deploy.export.onnx import export_onnx
from sr_deploy.export.triton import write_triton_repo
from sr_deploy.hardware import GpuInfo
from tests.helpers import SMALL, nearest_onnx

text_format = pytest.importorskip("google.protobuf.text_format")


def _triton_schema() -> ModuleType:
    """Triton's ``model_config_pb2`` as ``tritonclient`` ships it, loaded from its file: importing it through
    ``tritonclient.grpc`` would also need the gRPC runtime, which the schema does not."""
    tritonclient = pytest.importorskip("tritonclient")
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    assert spec is not None and spec.loader is not None, f"no Triton schema at {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


model_config_pb2 = _triton_schema()


def parse(config: Path):  # type: ignore[no-untyped-def]
    """Triton's own parse of the file (raises on any unknown field or malformed value)."""
    return text_format.Parse(config.read_text(), model_config_pb2.ModelConfig())


def fake_engine(path: Path, *profiles: str) -> Path:
    """Bytes standing in for a serialized engine, with a real sr-deploy sidecar (profiles as given)."""
    path.write_bytes(b"not a real engine: TensorRT cannot run here")
    write_metadata(path, EngineMetadata(
        tensorrt_version="10.13.0", gpu=GpuInfo("NVIDIA L4", (8, 9)), precision="fp16", onnx_sha256="0" * 64,
        onnx_path="m.fp16.onnx", input_name="lr", options=BuildOptions(tuple(Profile.parse(p) for p in profiles)),
        descriptor=SMALL.to_dict()))
    return path


def test_onnx_repository(small_onnx: Path, tmp_path: Path) -> None:
    result = write_triton_repo(tmp_path / "repo", "small x4", onnx_path=small_onnx, max_batch=6, instances=2,
                               batch_wait_ms=2.5)
    assert result.folder == tmp_path / "repo" / "small_x4"
    assert (result.folder / "1" / "model.onnx").read_bytes() == small_onnx.read_bytes()
    config = parse(result.config)
    assert config.name == "small_x4" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 6
    (inp,), (out,) = config.input, config.output
    assert (inp.name, inp.data_type, list(inp.dims)) == ("lr", model_config_pb2.TYPE_FP32, [3, -1, -1])
    assert (out.name, out.data_type, list(out.dims)) == ("sr", model_config_pb2.TYPE_FP32, [3, -1, -1])
    assert config.dynamic_batching.max_queue_delay_microseconds == 2500
    (group,) = config.instance_group
    assert group.count == 2 and group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP32"
    with pytest.raises(text_format.ParseError):  # the schema check can fail: a misspelled field
        text_format.Parse(result.config.read_text().replace("max_batch_size", "max_batch_sise"),
                          model_config_pb2.ModelConfig())

    half = nearest_onnx(tmp_path / "n.onnx")  # an fp16 sr-deploy file
    gpu = parse(write_triton_repo(tmp_path / "repo", "half", onnx_path=half).config)
    assert gpu.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters["precision_mode"] == "FP16"
    config = parse(write_triton_repo(tmp_path / "repo", "half", onnx_path=half, kind="cpu").config)
    assert config.max_batch_size == 8 and config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert not config.optimization.execution_accelerators.gpu_execution_accelerator  # TensorRT EP is GPU only


def test_static_onnx_shapes(small_weights: Path, tmp_path: Path) -> None:
    static = export_onnx(small_weights, tmp_path / "static.onnx", static=(32, 40)).path
    config = parse(write_triton_repo(tmp_path / "repo", "static", onnx_path=static).config)
    assert list(config.input[0].dims) == [3, 32, 40] and list(config.output[0].dims) == [3, 128, 160]


def test_engine_repository_respects_the_profiles(tmp_path: Path) -> None:
    engine = fake_engine(tmp_path / "m.engine", "1x3x32x32:1x3x256x256:4x3x720x1280")
    result = write_triton_repo(tmp_path / "repo", "m", engine=engine)
    config = parse(result.config)
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 4  # the profile's largest batch
    assert list(config.input[0].dims) == [3, -1, -1] and config.output[0].name == "sr"
    assert (result.folder / "1" / "model.plan").read_bytes() == engine.read_bytes()
    assert (result.folder / "1" / "model.plan.json").is_file()
    with pytest.raises(ExportError, match="larger than the engine's optimization profiles allow"):
        write_triton_repo(tmp_path / "repo", "m", engine=engine, max_batch=8)
    fixed = fake_engine(tmp_path / "f.engine", "1x3x64x96:2x3x64x96:8x3x64x96")
    config = parse(write_triton_repo(tmp_path / "repo", "f", engine=fixed, max_batch=2).config)
    assert config.max_batch_size == 2 and list(config.input[0].dims) == [3, 64, 96]
    assert list(config.output[0].dims) == [3, 256, 384]
    with pytest.raises(ValueError, match="GPU only"):
        write_triton_repo(tmp_path / "repo", "f", engine=fixed, kind="cpu")
    with pytest.raises(ValueError, match=r"^instances must be >= 1, got 0; batch_wait_ms must be >= 0, got -1.0$"):
        write_triton_repo(tmp_path / "repo", "f", engine=fixed, instances=0, batch_wait_ms=-1.0)  # each value named


def test_cli(small_onnx: Path, tmp_path: Path) -> None:
    from sr_deploy.cli import app

    result = CliRunner().invoke(app, ["export", "triton", str(small_onnx), "-o", str(tmp_path / "repo"),
                                      "--max-batch", "4", "--instances", "3"])
    assert result.exit_code == 0, result.output
    config = parse(tmp_path / "repo" / small_onnx.stem / "config.pbtxt")
    assert config.max_batch_size == 4 and config.instance_group[0].count == 3
    refused = CliRunner().invoke(app, ["export", "triton", "x", "-o", str(tmp_path), "--onnx", str(small_onnx),
                                       "--engine", "e.engine"])
    assert refused.exit_code == 2 and "at most one" in refused.output
