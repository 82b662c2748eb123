from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from onnxruntime.transformers.float16 import convert_float_to_float16

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.data.crops import parity_inputs
from sr_deploy.errors import ExportError, ModelFileError
from sr_deploy.export.calibration import calibration_set
from sr_deploy.export.fp16 import export_fp16, overflow_nodes, tensor_abs_max
from sr_deploy.export.onnx import export_onnx
from sr_deploy.models import load_weights, save_weights
from sr_deploy.runtime import load

BLOCK0 = "/blocks/blocks.0/body/body"


def test_fp16_export_of_a_trained_model(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    result = export_fp16(trained_tiny_onnx, tmp_path / "m.fp16.onnx", num_images=2)
    assert result.fp32_nodes == {} and result.parity.passed
    model = onnx.load(str(result.path))
    assert meta.read_props(model)[meta.PRECISION] == "fp16"
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    inits = {t.name: t for t in model.graph.initializer}
    assert all(inits[c.input[1]].data_type == onnx.TensorProto.FLOAT16 for c in convs)
    up = load(result.path)
    assert up.precision == "fp16"
    x = parity_inputs(meta.load_sr_onnx(trained_tiny_onnx)[1].scale)[1]
    np.testing.assert_allclose(up.run(x), load(trained_tiny_onnx).run(x), atol=2e-2)


@pytest.fixture(scope="module")
def overflow_onnx(trained_tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with block 0's first conv scaled by 1e7 and its second conv by 1e-7: same
    output (PReLU is positively homogeneous), but weights and activations of ~1e6 inside block 0."""
    net, desc = load_weights(trained_tiny_weights)
    conv1, bn1, _, conv2, _ = net.blocks[0].body
    k = 1e7
    with torch.no_grad():
        conv1.weight *= k
        conv1.bias *= k
        bn1.running_mean *= k
        bn1.running_var *= k * k
        bn1.bias *= k
        conv2.weight /= k
    folder = tmp_path_factory.mktemp("overflow")
    weights = save_weights(net, desc, folder / "overflow.safetensors")
    return export_onnx(weights, folder / "overflow.onnx").path


def test_overflow_detection_keeps_nodes_in_fp32(overflow_onnx: Path, tmp_path: Path) -> None:
    model, desc = meta.load_sr_onnx(overflow_onnx)
    peak = tensor_abs_max(model, calibration_set(None, desc.scale, num_images=2))
    hot = overflow_nodes(model, peak)
    assert sorted(hot) == [f"{BLOCK0}.0/Conv", f"{BLOCK0}.2/PRelu", f"{BLOCK0}.3/Conv"]
    assert all(v > 65504 / 4 for v in hot.values())
    # ORT CPU has no fp16 Conv here (it computes in fp32 after casting), so the activation overflow
    # a GPU would hit cannot be shown on CPU; what shows is the naive conversion clipping the
    # block's bias (BN folding put the 1e7 there) to 65504, while the export keeps the block in fp32.
    conv1 = next(n for n in model.graph.node if n.name == f"{BLOCK0}.0/Conv")
    naive = {t.name: t for t in convert_float_to_float16(model, keep_io_types=True).graph.initializer}
    assert naive[conv1.input[2]].data_type == onnx.TensorProto.FLOAT16
    assert np.abs(numpy_helper.to_array(naive[conv1.input[2]])).max() == 65504 < peak[conv1.input[2]]
    result = export_fp16(overflow_onnx, tmp_path / "o.fp16.onnx", num_images=2)
    assert sorted(result.fp32_nodes) == sorted(hot) and result.parity.passed
    half = onnx.load(str(result.path))
    kept = {t.name: t for t in half.graph.initializer}[conv1.input[2]]
    assert kept.data_type == onnx.TensorProto.FLOAT
    props = meta.read_props(half)
    assert f"{BLOCK0}.2/PRelu" in props[meta.FP32_NODES]


def test_fp16_bad_inputs(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="missing.onnx does not exist"):
        export_fp16(tmp_path / "missing.onnx", tmp_path / "o.onnx")
    half = export_fp16(trained_tiny_onnx, tmp_path / "h.onnx", num_images=1).path
    with pytest.raises(ModelFileError, match="h.onnx is a fp16 model"):
        export_fp16(half, tmp_path / "o.onnx")
    with pytest.raises(ExportError, match="calibration images: .*nodir"):
        export_fp16(trained_tiny_onnx, tmp_path / "o.onnx", calib=tmp_path / "nodir")
    assert not (tmp_path / "o.onnx").exists()
