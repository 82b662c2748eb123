from __future__ import annotations

import re
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.errors import ModelFileError
from sr_deploy.models import ModelDescriptor
from tests.helpers import NEAREST, nearest_onnx


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


def _external_model(folder: Path) -> Path:
    """:func:`nearest_onnx` re-saved with its initializer in ``weights.bin`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = nearest_onnx(folder / "ext.onnx", precision="fp32")
    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    return path


def _relocate(path: Path, location: str) -> None:
    """Point every external-data tensor of ``path`` at ``location`` (the data itself is not moved)."""
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save(model, str(path))


def test_external_data_inside_the_folder_loads(tmp_path: Path) -> None:
    path = _external_model(tmp_path / "model")
    raw = onnx.load(str(path), load_external_data=False)
    assert raw.graph.initializer[0].data_location == TensorProto.EXTERNAL
    loaded, desc = meta.load_sr_onnx(path)
    assert desc == NEAREST
    assert list(numpy_helper.to_array(loaded.graph.initializer[0])) == [1, 1, 4, 4]
    assert meta.file_props(path)[meta.PRECISION] == "fp32"
    (tmp_path / "model" / "sub").mkdir()
    (tmp_path / "model" / "weights.bin").rename(tmp_path / "model" / "sub" / "w.bin")
    _relocate(path, "sub/w.bin")  # a subfolder of the model's folder is inside it
    assert meta.load_sr_onnx(path)[1] == NEAREST


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink", "missing"])
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, kind: str) -> None:
    path = _external_model(tmp_path / "model")
    outside = tmp_path / "outside.bin"
    (tmp_path / "model" / "weights.bin").rename(outside)
    location, reason = {
        "parent": ("../outside.bin", "a '..' component"),
        "absolute": (str(outside), "an absolute path"),
        "symlink": ("link.bin", "outside the model's folder"),
        "missing": ("nothing.bin", "does not exist"),
    }[kind]
    if kind == "symlink":
        (tmp_path / "model" / "link.bin").symlink_to(outside)
    _relocate(path, location)
    message = re.escape(f"ONNX model {path}: tensor 'scales' has external data location {location!r}: {reason}")
    with pytest.raises(ModelFileError, match=message):
        meta.load_sr_onnx(path)
    with pytest.raises(ModelFileError, match=message):
        meta.file_props(path)
