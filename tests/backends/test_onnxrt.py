"""ONNX Runtime backend on CPU: same results as PyTorch on the same weights, tiled, from threads, and errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest

from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.backends.pytorch import TorchUpscaler
from sr_deploy.runtime.images import upscale_image
from sr_deploy.runtime.select import load_selected
from sr_deploy.runtime.tiling import plan_tiles, upscale_tiled
from tests.helpers import SMALL, random_srresnet


@pytest.fixture(scope="module")
def ort(small_onnx: Path) -> OrtUpscaler:
    return OrtUpscaler(small_onnx)


def test_onnx_runtime_equals_torch_on_the_same_weights(ort: OrtUpscaler) -> None:
    assert (ort.name, ort.device, ort.precision, ort.scale) == ("onnxruntime-fp32[CPU]", "cpu", "fp32", 4)
    assert ort.descriptor == SMALL
    torch_up = TorchUpscaler(random_srresnet(), SMALL)
    for shape in [(1, 3, 17, 23), (3, 3, 8, 8), (2, 3, 31, 12)]:
        x = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
        y = ort.run(x)
        assert y.shape == (shape[0], 3, shape[2] * 4, shape[3] * 4) and y.dtype == np.float32
        assert np.abs(y - torch_up.run(x)).max() <= 1e-5


def test_tiled_onnx_runtime_equals_whole_image_and_threads_agree(ort: OrtUpscaler) -> None:
    rng = np.random.default_rng(7)
    images = [rng.random((3, h, w), dtype=np.float32) for h, w in [(41, 35), (29, 50), (38, 38)]]
    plans = [plan_tiles(ort, *x.shape[1:], tile=9) for x in images]
    sequential = [upscale_tiled(ort, x, p) for x, p in zip(images, plans, strict=True)]
    for x, tiled in zip(images, sequential, strict=True):
        assert np.abs(tiled - ort.run(x[None])[0]).max() <= 1e-5
    with ThreadPoolExecutor(max_workers=3) as pool:
        concurrent = list(pool.map(lambda xp: upscale_tiled(ort, *xp), zip(images, plans, strict=True)))
    for seq, con in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(con, seq)


def test_image_level_output_matches_torch(ort: OrtUpscaler) -> None:
    img = np.random.default_rng(3).integers(0, 256, (21, 18, 3), dtype=np.uint8)
    a = upscale_image(ort, img, tile=5)
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


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_auto_runs_quantized_and_half_exports_on_the_cpu(small_onnx: Path, tmp_path: Path, precision: str) -> None:
    if precision == "int8":
        from sr_deploy.export.int8 import export_int8

        path = export_int8(small_onnx, tmp_path / "m-int8.onnx", target="ort-cpu", num_images=2).path
    else:
        from sr_deploy.export.fp16 import export_fp16

        path = export_fp16(small_onnx, tmp_path / "m-fp16.onnx", num_images=2).path
    up, selection = load_selected(path)
    assert isinstance(up, OrtUpscaler) and up.name == f"onnxruntime-{precision}[CPU]"
    assert selection.route.precision == precision and selection.route.device == "cpu"
    x = np.random.default_rng(11).random((3, 40, 37), dtype=np.float32)
    whole = up.run(x[None])[0]
    assert np.abs(upscale_tiled(up, x, plan_tiles(up, 40, 37, tile=7)) - whole).max() <= 1e-5
    reference = TorchUpscaler(random_srresnet(), SMALL).run(x[None])[0]
    rms = float(np.sqrt(np.mean(reference**2)))
    assert float(np.sqrt(np.mean((whole - reference) ** 2))) < 0.2 * rms  # lower precision, still the same model
