"""The fp16 search on models built to fail in fp16 in known places: overflow in one layer, overflow
only at a large input size, underflow that makes a division NaN, and offsets that cost accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.data.datasets import embedded_images
from sr_deploy.export.calibration import calibration_set
from sr_deploy.export.fp16_search import (
    FEEDS_NON_FINITE,
    NON_FINITE,
    OVERFLOW,
    READS_OVERFLOW,
    emulate_fp16,
    float_tensors,
    large_inputs,
    overflow_search,
)
from sr_deploy.models import ModelDescriptor

CONV = "/blocks/blocks.0/body/body.0/Conv"
DESC = ModelDescriptor(scale=4, num_features=16, num_blocks=2, name="graph-x4")


def sr_model(nodes: Sequence[onnx.NodeProto], inits: dict[str, np.ndarray], last: str) -> onnx.ModelProto:
    """An sr-deploy fp32 model ``lr`` (N x 3 x H x W) -> ... -> ``last`` -> nearest x4 Resize -> ``sr``."""
    inits = {**inits, "x4": np.array([1, 1, 4, 4], dtype=np.float32)}
    graph = helper.make_graph(
        [*nodes, helper.make_node("Resize", [last, "", "x4"], ["sr"], name="upsample", mode="nearest")],
        "graph",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["N", 3, "sH", "sW"])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    meta.write_props(model, meta.provenance(DESC, "fp32", "test", "0" * 64))
    return model


def after(model: onnx.ModelProto, tensor: str, node: onnx.NodeProto) -> None:
    """Insert ``node`` (reading ``tensor``, writing ``node.output[0]``) so every former reader of
    ``tensor`` reads its output instead (in place, graph order kept)."""
    for other in model.graph.node:
        for i, name in enumerate(other.input):
            if name == tensor:
                other.input[i] = node.output[0]
    where = next(i for i, n in enumerate(model.graph.node) if tensor in n.output)
    model.graph.node.insert(where + 1, node)


def overflowing(model: onnx.ModelProto, conv_name: str, k: float) -> onnx.ModelProto:
    """A copy of ``model`` whose Conv ``conv_name`` has weights and bias times ``k`` and is followed by
    ``Mul(1 / k)``: the same function in fp32, activations ``k`` times larger after that one conv."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    conv = next(n for n in out.graph.node if n.name == conv_name)
    inits = {t.name: t for t in out.graph.initializer}
    for name in conv.input[1:]:
        inits[name].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(inits[name]) * np.float32(k), name))
    out.graph.initializer.append(numpy_helper.from_array(np.array(1.0 / k, dtype=np.float32), "unscale"))
    after(out, conv.output[0], helper.make_node("Mul", [conv.output[0], "unscale"], ["unscaled"], name="unscale"))
    return out


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    with OrtUpscaler(model.SerializeToString(), descriptor=DESC) as up:
        return up.run(x)


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    return calibration_set(None, 4, num_images=2).batches


def test_search_finds_the_one_overflowing_conv(trained_tiny_onnx: Path, crops: list[np.ndarray]) -> None:
    model = overflowing(meta.load_sr_onnx(trained_tiny_onnx)[0], CONV, 1e5)
    x = crops[0]
    np.testing.assert_allclose(run(model, x), run(meta.load_sr_onnx(trained_tiny_onnx)[0], x), atol=1e-3)
    floats = float_tensors(model)
    assert not np.isfinite(run(emulate_fp16(model, (), floats), x)).all()  # naive fp16 breaks
    kept = overflow_search(model, crops)
    assert {n: r.reason for n, r in kept.items()} == {CONV: OVERFLOW, "unscale": READS_OVERFLOW}
    assert kept[CONV].max_abs is not None and kept[CONV].max_abs > 65504 and kept[CONV].input == "4x3x48x48"
    fixed = run(emulate_fp16(model, kept, floats), x)
    assert np.isfinite(fixed).all()
    assert np.abs(fixed - run(model, x)).max() < 2 / 255


def test_a_normal_model_keeps_nothing(trained_tiny_onnx: Path, crops: list[np.ndarray]) -> None:
    model, desc = meta.load_sr_onnx(trained_tiny_onnx)
    assert overflow_search(model, crops, large_inputs(embedded_images("train"), 128, desc, None)) == {}


def test_overflow_that_only_large_inputs_show(crops: list[np.ndarray]) -> None:
    """A per-image sum over pixels (as a global-context branch computes) grows with the image: about
    3.5e3 on 48 x 48 crops, 1e5 at 256 x 256, past fp16's 65504."""
    axes = np.array([1, 2, 3], dtype=np.int64)
    nodes = [helper.make_node("ReduceSum", ["lr", "axes"], ["total"], name="total", keepdims=1),
             helper.make_node("Mul", ["total", "tiny"], ["context"], name="context"),
             helper.make_node("Add", ["lr", "context"], ["mixed"], name="mix")]
    model = sr_model(nodes, {"axes": axes, "tiny": np.array(1e-7, dtype=np.float32)}, "mixed")
    assert overflow_search(model, crops) == {}
    big = large_inputs(embedded_images("train"), 256, DESC, None)
    assert [b.shape for b in big] == [(1, 3, 256, 256)]
    kept = overflow_search(model, crops, big)
    assert {n: r.reason for n, r in kept.items()} == {"total": OVERFLOW, "context": READS_OVERFLOW}
    assert kept["total"].input == "1x3x256x256" and kept["total"].max_abs is not None and kept["total"].max_abs > 65504
    assert "writes total" in kept["total"].describe() and "1x3x256x256" in kept["total"].describe()
    assert large_inputs(embedded_images("train"), 256, DESC, (48, 48)) == []  # fixed-size model


def test_underflow_to_nan_is_traced_to_its_feeders(crops: list[np.ndarray]) -> None:
    """``(q * 1e-4) / (q * 2e-4)`` with ``q`` about 1e-4 is 0.5 in fp32; in fp16 both products (1e-8 and
    2e-8) round to 0 and the ratio is NaN. Keeping the division alone in fp32 does not help (its inputs
    are already 0), so the search must go on to the two products; no magnitude check finds any of them."""
    nodes = [helper.make_node("Add", ["lr", "one"], ["p"], name="p"),
             helper.make_node("Mul", ["p", "a"], ["q"], name="q"),
             helper.make_node("Mul", ["q", "a"], ["num"], name="num"),
             helper.make_node("Mul", ["q", "b"], ["den"], name="den"),
             helper.make_node("Div", ["num", "den"], ["ratio"], name="ratio"),
             helper.make_node("Mul", ["ratio", "small"], ["part"], name="part"),
             helper.make_node("Add", ["lr", "part"], ["mixed"], name="mix")]
    inits = {"one": np.array(1.0, dtype=np.float32), "a": np.array(1e-4, dtype=np.float32),
             "b": np.array(2e-4, dtype=np.float32), "small": np.array(1e-3, dtype=np.float32)}
    model = sr_model(nodes, inits, "mixed")
    assert np.isfinite(run(model, crops[0])).all()
    assert not np.isfinite(run(emulate_fp16(model, (), float_tensors(model)), crops[0])).all()
    kept = overflow_search(model, crops)
    assert {n: r.reason for n, r in kept.items()} == {"ratio": NON_FINITE, "num": FEEDS_NON_FINITE,
                                                      "den": FEEDS_NON_FINITE}
    assert all(r.tensor == "ratio" for r in kept.values())
    assert np.isfinite(run(emulate_fp16(model, kept, float_tensors(model)), crops[0])).all()

