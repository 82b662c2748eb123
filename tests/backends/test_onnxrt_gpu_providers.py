"""GPU execution-provider configuration of the ONNX Runtime backend, and the CPU path beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sr_deploy.backends.base import BackendUnavailable
from sr_deploy.backends.onnxrt import OrtUpscaler, cuda_provider, tensorrt_provider
from sr_deploy.backends.trt_profiles import Profile
from tests.export.test_tensorrt_build import sr_onnx


def test_cuda_provider_options() -> None:
    name, options = cuda_provider(1, "HEURISTIC")
    assert name == "CUDAExecutionProvider"
    assert options == {"device_id": "1", "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "1"}
    assert cuda_provider()[1]["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    with pytest.raises(ValueError, match="EXHAUSTIVE"):
        cuda_provider(0, "FASTEST")


def test_tensorrt_provider_has_engine_and_timing_cache_and_profile(tmp_path: Path) -> None:
    name, options = tensorrt_provider(tmp_path / "trt", input_name="lr",
                                      profile=Profile.parse("1x3x32x32:1x3x256x256:2x3x512x512"), opt_level=5)
    assert name == "TensorrtExecutionProvider" and (tmp_path / "trt").is_dir()
    assert options["trt_engine_cache_enable"] == "True" and options["trt_engine_cache_path"] == str(tmp_path / "trt")
    assert options["trt_timing_cache_enable"] == "True" and options["trt_builder_optimization_level"] == "5"
    assert options["trt_profile_min_shapes"] == "lr:1x3x32x32" and options["trt_profile_max_shapes"] == "lr:2x3x512x512"
    assert "trt_fp16_enable" not in options  # precision comes from the ONNX graph


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA EP present here")
def test_gpu_provider_missing_is_reported_not_silently_cpu(tmp_path: Path) -> None:
    path = sr_onnx(tmp_path / "m.onnx", precision="fp32")
    with pytest.raises(BackendUnavailable, match="has no CUDAExecutionProvider .*available: .*CPUExecutionProvider"):
        OrtUpscaler(path, providers=[cuda_provider(), "CPUExecutionProvider"])


def test_cpu_path_and_per_shape_warmup(tmp_path: Path) -> None:
    up = OrtUpscaler(sr_onnx(tmp_path / "m.onnx", precision="fp32"))
    assert up.device == "cpu" and up.name == "onnxruntime-fp32[CPU]"
    up.warmup([(1, 3, 8, 8), (2, 3, 4, 6)])
    x = np.random.default_rng(0).random((1, 3, 5, 7), dtype=np.float32)
    y = up.run(x)
    np.testing.assert_array_equal(y, x.repeat(4, axis=2).repeat(4, axis=3))
