from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.errors import ModelFileError
from sr_deploy.models import ModelDescriptor


def _identity_model(rank: int, with_descriptor: bool) -> onnx.ModelProto:
    shape = ["batch", 3, "height", "width"][:rank]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["lr"], ["sr"], name="id")],
        "g",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph)
    if with_descriptor:
        meta.write_props(model, {meta.DESCRIPTOR: ModelDescriptor().to_json()})
    return model


def test_load_sr_onnx_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="missing.onnx does not exist"):
        meta.load_sr_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_text("this is not a protobuf at all \x00\xff")
    with pytest.raises(ModelFileError, match="junk.onnx is not a readable ONNX file"):
        meta.load_sr_onnx(junk)
    plain = tmp_path / "plain.onnx"
    onnx.save(_identity_model(4, with_descriptor=False), plain)
    with pytest.raises(ModelFileError, match="plain.onnx was not written by sr-deploy"):
        meta.load_sr_onnx(plain)
    rank3 = tmp_path / "rank3.onnx"
    onnx.save(_identity_model(3, with_descriptor=True), rank3)
    with pytest.raises(ModelFileError, match="rank3.onnx: input 'lr' must be N x 3 x H x W, got rank 3"):
        meta.load_sr_onnx(rank3)


def test_precision_check_and_props_round_trip(tmp_path: Path) -> None:
    model = _identity_model(4, with_descriptor=True)
    meta.write_props(model, {meta.PRECISION: "fp16", meta.CALIBRATION: {"method": "minmax"}})
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    with pytest.raises(ModelFileError, match="m.onnx is a fp16 model; this step needs the fp32 export"):
        meta.load_sr_onnx(path, "fp32")
    loaded, desc = meta.load_sr_onnx(path, None)
    assert desc == ModelDescriptor()
    assert meta.read_props(loaded)[meta.CALIBRATION] == '{"method": "minmax"}'
