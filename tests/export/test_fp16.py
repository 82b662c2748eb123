from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from onnxruntime.transformers.float16 import convert_float_to_float16

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.data.crops import parity_inputs
from sr_deploy.data.datasets import embedded_images
from sr_deploy.data.image_io import read_image, write_image
from sr_deploy.errors import ExportError, ModelFileError
from sr_deploy.export.fp16 import export_fp16
from sr_deploy.export.fp16_search import (
    ACCURACY,
    OVERFLOW,
    READS_OVERFLOW,
    Fp32Node,
    emulate_fp16,
    float_tensors,
)
from sr_deploy.export.onnx import export_onnx
from sr_deploy.export.sensitivity import outputs_of, validation_pairs
from sr_deploy.models import ModelDescriptor, load_weights, save_weights
from sr_deploy.runtime import load
from sr_deploy.runtime.load import file_budget
from sr_deploy.runtime.select import identify
from sr_deploy.scoring import mean_y_psnr
from tests.export.test_fp16_search import CONV, after, overflowing

BLOCK0 = "/blocks/blocks.0/body/body"


def test_fp16_export_of_a_trained_model(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    result = export_fp16(trained_tiny_onnx, tmp_path / "m.fp16.onnx", num_images=2, large=128)
    assert result.fp32_nodes == {} and result.parity.passed and result.budget is None
    assert result.calibration["large"] == ["1x3x128x128"]
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


def test_export_keeps_the_overflowing_conv_and_records_why(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    model = overflowing(meta.load_sr_onnx(trained_tiny_onnx)[0], CONV, 1e5)
    result = export_fp16(model, tmp_path / "o.fp16.onnx", num_images=2, large=None)
    assert {n: r.reason for n, r in result.fp32_nodes.items()} == {CONV: OVERFLOW, "unscale": READS_OVERFLOW}
    assert result.parity.passed
    half = onnx.load(str(result.path))
    conv = next(n for n in half.graph.node if n.name == CONV)
    assert {t.name: t for t in half.graph.initializer}[conv.input[1]].data_type == onnx.TensorProto.FLOAT
    # metadata round trip: the JSON names every kept node with its reason, peak and input size
    record = json.loads(meta.read_props(half)[meta.FP32_NODES])
    assert {n: Fp32Node(**d) for n, d in record["nodes"].items()} == result.fp32_nodes
    assert record["nodes"][CONV]["max_abs"] > 65504 and record["nodes"][CONV]["input"] == "1x3x48x48"
    assert record["limit"] == 65504 / 4 and record["calibration"]["large"] == []


@pytest.fixture(scope="module")
def scaled_block0(trained_tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
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


def test_scaled_block_stays_fp32_where_naive_conversion_clips(scaled_block0: Path, tmp_path: Path) -> None:
    model, _ = meta.load_sr_onnx(scaled_block0)
    result = export_fp16(scaled_block0, tmp_path / "o.fp16.onnx", num_images=2, large=None)
    assert {n: r.reason for n, r in result.fp32_nodes.items()} == {
        f"{BLOCK0}.0/Conv": OVERFLOW, f"{BLOCK0}.2/PRelu": OVERFLOW, f"{BLOCK0}.3/Conv": READS_OVERFLOW}
    assert result.parity.passed
    # the naive conversion clips the block's bias (BN folding put the 1e7 there) to 65504
    conv1 = next(n for n in model.graph.node if n.name == f"{BLOCK0}.0/Conv")
    naive = {t.name: t for t in convert_float_to_float16(model, keep_io_types=True).graph.initializer}
    assert np.abs(numpy_helper.to_array(naive[conv1.input[2]])).max() == 65504
    kept = {t.name: t for t in onnx.load(str(result.path)).graph.initializer}[conv1.input[2]]
    assert kept.data_type == onnx.TensorProto.FLOAT


def offsets(model: onnx.ModelProto, shifts: dict[str, float]) -> onnx.ModelProto:
    """A copy of ``model`` with ``+c`` then ``-c`` after each Conv named in ``shifts`` (name -> ``c``): the
    same function in fp32, but in fp16 those activations sit near ``c``, where fp16 numbers are ``c /
    1024`` apart (node names ``up<i>`` and ``down<i>``)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for i, (name, c) in enumerate(shifts.items()):
        out.graph.initializer.append(numpy_helper.from_array(np.array(c, dtype=np.float32), f"offset{i}"))
        tensor = next(n for n in out.graph.node if n.name == name).output[0]
        after(out, tensor, onnx.helper.make_node("Add", [tensor, f"offset{i}"], [f"up{i}"], name=f"up{i}"))
        after(out, f"up{i}", onnx.helper.make_node("Sub", [f"up{i}", f"offset{i}"], [f"down{i}"], name=f"down{i}"))
    return out


def test_budget_search_holds_on_held_out_images(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    fp32, desc = meta.load_sr_onnx(trained_tiny_onnx)
    convs = [n.name for n in fp32.graph.node if n.op_type == "Conv"]
    model = offsets(fp32, {convs[1]: 4096.0, convs[3]: 16.0})  # the second costs about what fp16 always does
    budget = 0.02
    val, held = tmp_path / "val", tmp_path / "held"  # searched on one photo, held out: three others
    for folder, paths in ((val, embedded_images("eval")[:1]), (held, embedded_images("train")[:3])):
        folder.mkdir()
        for path in paths:
            write_image(folder / f"{path.stem}.png", read_image(path))
    result = export_fp16(model, tmp_path / "b.fp16.onnx", num_images=2, large=None, max_psnr_drop=budget, val=val)
    assert result.budget is not None and result.budget.fp16_drop > budget >= result.budget.final_drop
    assert {n: r.reason for n, r in result.fp32_nodes.items()} == dict.fromkeys(["up0", "down0"], ACCURACY)
    assert result.ort_drop_db is not None and result.ort_drop_db <= budget
    record = json.loads(meta.read_props(onnx.load(str(result.path)))[meta.FP32_NODES])
    assert record["max_psnr_drop_db"] == budget and record["emulated_drop_db"] == result.budget.final_drop
    # a budget at run time holds the file to the drop it records (it said "records no Y-PSNR drop")
    assert identify(result.path).recorded_drop == result.ort_drop_db
    assert file_budget(identify(result.path), None, budget).startswith(f"recorded Y-PSNR drop {result.ort_drop_db:.3f}")
    # held out: emulated fp16 as the search measured it
    pairs = validation_pairs(held, desc.scale)
    floats = float_tensors(model)

    def drop(fp32_nodes: list[str]) -> float:
        onnx.save(emulate_fp16(model, fp32_nodes, floats), str(tmp_path / "e.onnx"))
        onnx.save(model, str(tmp_path / "r.onnx"))
        return (mean_y_psnr(outputs_of(tmp_path / "r.onnx", desc, pairs), pairs, desc.scale)
                - mean_y_psnr(outputs_of(tmp_path / "e.onnx", desc, pairs), pairs, desc.scale))

    assert drop([]) > budget  # all fp16 would not hold on these images either
    assert drop(list(result.fp32_nodes)) <= budget


def test_fp16_bad_inputs(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="missing.onnx does not exist"):
        export_fp16(tmp_path / "missing.onnx", tmp_path / "o.onnx")
    half = export_fp16(trained_tiny_onnx, tmp_path / "h.onnx", num_images=1, large=None).path
    with pytest.raises(ModelFileError, match="h.onnx is a fp16 model"):
        export_fp16(half, tmp_path / "o.onnx")
    with pytest.raises(ExportError, match="calibration images: .*nodir"):
        export_fp16(trained_tiny_onnx, tmp_path / "o.onnx", calib=tmp_path / "nodir")
    with pytest.raises(ExportError, match="max_psnr_drop must be >= 0"):
        export_fp16(trained_tiny_onnx, tmp_path / "o.onnx", num_images=1, large=None, max_psnr_drop=-1)
    with pytest.raises(ExportError, match="large input's side must be >= 0"):  # it checked a 1x1 input
        export_fp16(trained_tiny_onnx, tmp_path / "o.onnx", num_images=1, large=-5)
    assert not (tmp_path / "o.onnx").exists()


class ChannelAttentionSR(torch.nn.Module):
    """Not an SRResNet: conv -> LayerNorm -> channel attention (normalize, MatMul, Softmax) -> channel
    gate (mean over pixels, Linear, Sigmoid) -> conv -> pixel shuffle x4 (shape ops with int64 tensors)."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.head = torch.nn.Conv2d(3, c, 3, padding=1)
        self.norm = torch.nn.LayerNorm(c)
        self.qkv = torch.nn.Conv2d(c, 3 * c, 1)
        self.gate = torch.nn.Linear(c, c)
        self.tail = torch.nn.Conv2d(c, 3 * 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        n, c, h, w = f.shape
        t = self.norm(f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        q, k, v = self.qkv(t).flatten(2).chunk(3, dim=1)
        q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
        y = (torch.softmax(q @ k.transpose(1, 2) * 4.0, dim=-1) @ v).view(n, c, h, w)
        g = torch.sigmoid(self.gate(f.mean(dim=(2, 3))))[:, :, None, None]
        return torch.nn.functional.pixel_shuffle(self.tail(f + y * g), 4)


def test_search_runs_on_an_attention_graph(tmp_path: Path) -> None:
    torch.manual_seed(0)
    desc = ModelDescriptor(scale=4, num_features=16, num_blocks=1, name="channel-attention-x4")
    fp32 = export_onnx(ChannelAttentionSR().eval(), tmp_path / "a.onnx", descriptor=desc)
    ops = {n.op_type for n in onnx.load(fp32).graph.node}
    assert {"MatMul", "Softmax", "Sigmoid", "ReduceMean", "Reshape"} <= ops
    result = export_fp16(fp32, tmp_path / "a.fp16.onnx", num_images=1, large=128, max_psnr_drop=0.01)
    assert str(result) == str(tmp_path / "a.fp16.onnx")
    assert meta.read_props(onnx.load(result))[meta.SOURCE] == str(tmp_path / "a.onnx")  # the export result's path
    assert result.fp32_nodes == {} and result.parity.passed
    assert result.budget is not None and result.budget.final_drop <= 0.01
    assert result.ort_drop_db is not None and result.ort_drop_db <= 0.01


def test_fixed_shape_export_is_searched_at_its_size(trained_tiny_weights: Path, tmp_path: Path) -> None:
    """A fixed-shape export (batch 1, one size: the fallback for architectures that trace at one size)
    is calibrated and validated at that size, without the large input it cannot run."""
    net, desc = load_weights(trained_tiny_weights)
    fixed = export_onnx(net, tmp_path / "f.onnx", descriptor=dataclasses.replace(desc, fixed_size=(40, 40))).path
    result = export_fp16(fixed, tmp_path / "f.fp16.onnx", num_images=1, max_psnr_drop=0.05)
    assert result.calibration["crop"] == 40 and result.calibration["large"] == []
    assert result.budget is not None and result.budget.validation["crop"] == 40 and result.parity.passed
