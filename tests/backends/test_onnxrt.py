"""ONNX Runtime backend: on CPU the same results as PyTorch on the same weights, tiled, from threads, and errors;
the GPU execution-provider configuration beside it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from sr_deploy.artifacts import sha256_file
from sr_deploy.backends.base import BackendUnavailable
from sr_deploy.backends.onnx_metadata import DESCRIPTOR
from sr_deploy.backends.onnxrt import OrtUpscaler, cuda_provider, tensorrt_provider
from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.backends.trt_profiles import Profile
from sr_deploy.errors import ModelFileError
from sr_deploy.runtime.images import upscale_image
from sr_deploy.runtime.load import load_selected
from sr_deploy.runtime.tiling import TiledUpscaler, plan_tiles, upscale_tiled
from tests.helpers import SMALL, nearest_onnx, random_srresnet


@pytest.fixture(scope="module")
def small_ort(small_onnx: Path) -> OrtUpscaler:
    return OrtUpscaler(small_onnx)


def test_onnx_runtime_equals_torch_on_the_same_weights(small_ort: OrtUpscaler) -> None:
    assert (small_ort.name, small_ort.device, small_ort.precision, small_ort.scale) == (
        "onnxruntime-fp32[CPU]", "cpu", "fp32", 4)
    assert small_ort.descriptor == SMALL
    torch_up = TorchUpscaler(random_srresnet(), SMALL)
    for shape in [(1, 3, 17, 23), (3, 3, 8, 8), (2, 3, 31, 12)]:
        x = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
        y = small_ort.run(x)
        assert y.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4) and y.dtype == np.float32
        assert np.abs(y - torch_up.run(x)).max() <= 1e-5


def test_tiled_onnx_runtime_equals_whole_image_and_threads_agree(small_ort: OrtUpscaler) -> None:
    rng = np.random.default_rng(7)
    images = [rng.random((3, h, w), dtype=np.float32) for h, w in [(41, 35), (29, 50), (38, 38)]]
    plans = [plan_tiles(small_ort, *x.shape[1:], tile=9) for x in images]
    sequential = [upscale_tiled(small_ort, x, p) for x, p in zip(images, plans, strict=True)]
    for x, tiled in zip(images, sequential, strict=True):
        assert np.abs(tiled - small_ort.run(x[None])[0]).max() <= 1e-5
    with ThreadPoolExecutor(max_workers=3) as pool:
        concurrent = list(pool.map(lambda xp: upscale_tiled(small_ort, *xp), zip(images, plans, strict=True)))
    for seq, con in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(con, seq)


def test_image_level_output_matches_torch(small_ort: OrtUpscaler) -> None:
    img = np.random.default_rng(3).integers(0, 256, (21, 18, 3), dtype=np.uint8)
    a = upscale_image(small_ort, img, tile=5)
    b = upscale_image(TorchUpscaler(random_srresnet(), SMALL), img)
    assert a.shape == (84, 72, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_files_without_sr_deploy_metadata_or_missing_are_errors(small_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(small_onnx))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(ValueError, match="bare.onnx has no sr-deploy metadata"):
        OrtUpscaler(bare)
    with pytest.raises(FileNotFoundError, match="missing.onnx does not exist"):
        OrtUpscaler(tmp_path / "missing.onnx")
    model.metadata_props.add(key=DESCRIPTOR, value='{"scale": "four"}')  # a descriptor that does not parse
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ModelFileError, match=f"broken.onnx: invalid '{DESCRIPTOR}' metadata"):
        OrtUpscaler(broken)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_auto_runs_quantized_and_half_exports_on_the_cpu(small_onnx: Path, tmp_path: Path, precision: str) -> None:
    if precision == "int8":
        from sr_deploy.export.int8 import export_int8

        # random weights: accuracy means nothing, so the plain-export gate is opened
        path = export_int8(small_onnx, tmp_path / "m-int8.onnx", target="ort-cpu", num_images=2, max_plain_drop=99).path
    else:
        from sr_deploy.export.fp16 import export_fp16

        path = export_fp16(small_onnx, tmp_path / "m-fp16.onnx", num_images=2).path
    up, selection = load_selected(path, backend="onnxruntime")  # auto prefers OpenVINO where it is installed
    assert isinstance(up, OrtUpscaler) and up.name == f"onnxruntime-{precision}[CPU]"
    assert selection.route.precision == precision and selection.route.device == "cpu"
    assert load_selected(path)[1].route.precision == precision  # auto runs the file's own precision too
    x = np.random.default_rng(11).random((3, 40, 37), dtype=np.float32)
    whole = up.run(x[None])[0]
    assert np.abs(upscale_tiled(up, x, plan_tiles(up, 40, 37, tile=7)) - whole).max() <= 1e-5
    reference = TorchUpscaler(random_srresnet(), SMALL).run(x[None])[0]
    rms = float(np.sqrt(np.mean(reference**2)))
    assert float(np.sqrt(np.mean((whole - reference) ** 2))) < 0.2 * rms  # lower precision, still the same model


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


@pytest.mark.skipif("CUDAExecutionProvider" in onnxruntime.get_available_providers(), reason="CUDA EP present here")
def test_gpu_provider_missing_is_reported_not_silently_cpu(tmp_path: Path) -> None:
    path = nearest_onnx(tmp_path / "m.onnx", precision="fp32")
    with pytest.raises(BackendUnavailable, match="has no CUDAExecutionProvider .*available: .*CPUExecutionProvider"):
        OrtUpscaler(path, providers=[cuda_provider(), "CPUExecutionProvider"])


def test_cpu_path_and_per_shape_warmup(tmp_path: Path) -> None:
    up = OrtUpscaler(nearest_onnx(tmp_path / "m.onnx", precision="fp32"))
    assert up.device == "cpu" and up.name == "onnxruntime-fp32[CPU]"
    up.warmup([(1, 3, 8, 8), (2, 3, 4, 6)])
    x = np.random.default_rng(0).random((1, 3, 5, 7), dtype=np.float32)
    y = up.run(x)
    np.testing.assert_array_equal(y, x.repeat(4, axis=2).repeat(4, axis=3))


def test_weights_digest_names_the_weights_each_backend_runs(small_onnx: Path, small_ort: OrtUpscaler) -> None:
    """What a resumed video job checks: the file's sha256, or the network's tensors for torch."""
    assert small_ort.weights_digest() == sha256_file(small_onnx)
    assert OrtUpscaler(small_onnx.read_bytes(), descriptor=SMALL).weights_digest() == sha256_file(small_onnx)
    torch_a, torch_b = (TorchUpscaler(random_srresnet(SMALL, seed=s), SMALL) for s in (0, 1))
    assert torch_a.weights_digest() == TorchUpscaler(random_srresnet(SMALL, seed=0), SMALL).weights_digest()
    assert torch_a.weights_digest() != torch_b.weights_digest()
    assert TiledUpscaler(small_ort).weights_digest() == small_ort.weights_digest()
