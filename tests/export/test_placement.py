"""TensorRT's Q/DQ placement rules, each on a tiny synthetic ONNX graph that has its pattern, and on the shipped
SRResNet x4 exported in the ``tensorrt`` layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sr_deploy.export.placement import (
    Graph,
    Site,
    add_rule,
    concat_rule,
    conv_epilogue,
    move_across_data_movement,
    place,
)
from sr_deploy.export.qdq import insert_qdq

C = 4  # channels of the synthetic graphs


class _Net:
    """A tiny NCHW float graph built node by node (convolutions 3x3 with random weights)."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv(self, x: str, name: str, cin: int = C, cout: int = C) -> str:
        w = self.const(f"{name}.w", self.rng.normal(0, 0.3, (cout, cin, 3, 3)))
        b = self.const(f"{name}.b", self.rng.normal(0, 0.1, (cout,)))
        return self.op("Conv", [x, w, b], name, pads=[1, 1, 1, 1])

    def model(self, out: str, cin: int = C, cout: int = C) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 8, 8])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["n", "c", "h", "w"])], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.checker.check_model(model)
        return model


def _residual_block(identity_first: bool) -> onnx.ModelProto:
    """x -> conv1 -> ReLU -> conv2 -> Add(x, conv2) -> conv3."""
    n = _Net()
    body = n.conv(n.op("Relu", [n.conv("x", "conv1")], "relu"), "conv2")
    added = n.op("Add", ["x", body] if identity_first else [body, "x"], "add")
    return n.model(n.conv(added, "conv3"))


def _sites(model: onnx.ModelProto, exclude: tuple[str, ...] = ()) -> set[tuple[str, int, str]]:
    return {(s.node, s.index, s.rule) for s in place(model, exclude).sites}


@pytest.mark.parametrize("identity_first", [True, False])
def test_residual_add_quantizes_the_identity_input_only(identity_first: bool) -> None:
    model = _residual_block(identity_first)
    identity = 0 if identity_first else 1
    g = Graph(model)
    assert add_rule(g, "add", ["conv1", "conv2", "conv3"]) == [Site("add", identity, "x", "add-identity")]
    assert _sites(model) == {("conv1", 0, "conv-input"), ("conv2", 0, "conv-input"), ("conv3", 0, "conv-input"),
                             ("add", identity, "add-identity")}
    placement = place(model)
    assert placement.weights == ["conv1", "conv2", "conv3"]
    assert placement.groups == {"conv1": ["conv1", "relu"], "conv2": ["conv2", "add"], "conv3": ["conv3"]}
    # leaving conv2 float takes its input and weight pairs and the identity pair of the Add fused into it, and
    # nothing of its neighbours
    excluded = place(model, ("conv2",))
    assert _sites(model, ("conv2",)) == {("conv1", 0, "conv-input"), ("conv3", 0, "conv-input")}
    assert excluded.weights == ["conv1", "conv3"] and "conv2" not in excluded.groups
    # an Add whose convolution output has a second reader cannot fuse: no pair on it
    n = _Net()
    body = n.conv("x", "conv1")
    n.op("Add", ["x", body], "add")
    n.op("Add", [body, body], "twice")
    model = n.model("twice")
    assert add_rule(Graph(model), "add", ["conv1"]) == [] and {s.rule for s in place(model).sites} == {"conv-input"}


def test_no_qdq_between_a_conv_and_its_activation() -> None:
    n = _Net()
    a = n.op("PRelu", [n.conv("x", "conv1"), n.const("slope", np.full((C, 1, 1), 0.25))], "prelu")
    b = n.op("LeakyRelu", [n.conv(a, "conv2")], "lrelu", alpha=0.2)
    model = n.model(n.conv(b, "conv3"))
    g = Graph(model)
    assert [x.name for x in conv_epilogue(g, "prelu") or []] == ["conv1", "prelu"]
    assert [x.name for x in conv_epilogue(g, "lrelu") or []] == ["conv2", "lrelu"]
    placement = place(model)
    # the pairs sit after each activation (on the next convolution's input), never on an activation's input
    assert {(s.node, s.tensor) for s in placement.sites} == {("conv1", "x"), ("conv2", "prelu"), ("conv3", "lrelu")}
    assert placement.groups == {"conv1": ["conv1", "prelu"], "conv2": ["conv2", "lrelu"], "conv3": ["conv3"]}


def test_pixel_shuffle_moves_the_pair_to_its_input_once() -> None:
    # SwinIR's upsampler: conv -> PixelShuffle -> conv (read twice here); Real-ESRGAN x2: PixelUnshuffle first
    n = _Net()
    unshuffled = n.op("SpaceToDepth", ["x"], "unshuffle", blocksize=2)
    first = n.conv(unshuffled, "conv0", cin=4 * C, cout=4 * C)
    shuffled = n.op("DepthToSpace", [first], "shuffle", blocksize=2, mode="CRD")
    model = n.model(n.op("Add", [n.conv(shuffled, "conv1"), n.conv(shuffled, "conv2")], "sum"))
    g = Graph(model)
    moved = move_across_data_movement(g, Site("conv1", 0, "shuffle", "conv-input"))
    assert moved == Site("shuffle", 0, "conv0", "conv-input", ("shuffle",))
    sites = place(model).sites
    # one pair on the shuffle's input serves both convolutions; the network input's pair goes before the
    # unshuffle; the Add of two convolutions fuses into the later one, so the earlier one's output is its identity
    assert [(s.node, s.index, s.tensor, s.via) for s in sites] == [
        ("unshuffle", 0, "x", ("unshuffle",)), ("shuffle", 0, "conv0", ("shuffle",)), ("sum", 0, "conv1", ())]
    # SRResNet's upsampler (conv -> PixelShuffle -> PReLU -> conv): the pair stays after the PReLU
    n = _Net()
    up = n.op("DepthToSpace", [n.conv("x", "conv1", cout=4 * C)], "shuffle", blocksize=2, mode="CRD")
    act = n.op("PRelu", [up, n.const("slope", np.full((C, 1, 1), 0.25))], "prelu")
    model = n.model(n.conv(act, "conv2"))
    assert [(s.node, s.tensor) for s in place(model).sites] == [("conv1", "x"), ("conv2", "prelu")]


def _dense_block() -> onnx.ModelProto:
    """RRDB's dense connections: x1 = lrelu(conv1(x)), x2 = lrelu(conv2(cat(x, x1))), conv3(cat(x, x1, x2)),
    and its scaled residual 0.2 * conv3(...) + x."""
    n = _Net()
    x1 = n.op("LeakyRelu", [n.conv("x", "conv1")], "x1", alpha=0.2)
    x2 = n.op("LeakyRelu", [n.conv(n.op("Concat", ["x", x1], "cat1", axis=1), "conv2", cin=2 * C)], "x2", alpha=0.2)
    x3 = n.conv(n.op("Concat", ["x", x1, x2], "cat2", axis=1), "conv3", cin=3 * C)
    scaled = n.op("Mul", [x3, n.const("beta", np.array(0.2))], "scaled")
    return n.model(n.op("Add", [scaled, "x"], "add"))


def test_concat_inputs_share_one_scale() -> None:
    model = _dense_block()
    g = Graph(model)
    assert [(s.index, s.tensor) for s in concat_rule(g, "cat2")] == [(0, "x"), (1, "x1"), (2, "x2")]
    placement = place(model)
    assert Counter(s.rule for s in placement.sites) == {"conv-input": 3, "concat-input": 5, "add-identity": 1}
    # the scaled residual fuses into conv3 (Conv + Mul by a constant + Add): only the identity x is quantized
    assert [(s.node, s.index) for s in placement.sites if s.rule == "add-identity"] == [("add", 1)]
    assert placement.groups["conv3"] == ["conv3", "scaled", "add"]
    assert placement.shared_scales == [("cat1", "cat2", "x", "x1", "x2")]
    # written out: every pair on a tensor of the group has the group's scale, the largest of its ranges
    from onnxruntime.quantization import CalibrationMethod, TensorsData

    amax = {"x": 1.0, "x1": 3.0, "x2": 2.0, "cat1": 3.0, "cat2": 3.0}
    ranges = TensorsData(CalibrationMethod.MinMax,
                         {t: (np.array(-a, np.float32), np.array(a, np.float32)) for t, a in amax.items()})
    q = insert_qdq(model, placement, ranges)
    onnx.checker.check_model(q)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    scales = {n.input[0]: float(inits[n.input[1]]) for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert set(scales) == set(amax) and all(s == pytest.approx(3.0 / 127) for s in scales.values())


def test_written_model_runs_close_to_float() -> None:
    ort = pytest.importorskip("onnxruntime")
    from onnxruntime.quantization import CalibrationMethod, TensorsData

    model = _residual_block(identity_first=True)
    x = np.random.default_rng(1).uniform(0, 1, (1, C, 8, 8)).astype(np.float32)
    # the ranges of the quantized tensors, measured on this input (a one-image calibration)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend([helper.make_tensor_value_info(t, TensorProto.FLOAT, ["n", "c", "h", "w"])
                               for t in ("relu", "add")])
    outs = dict(zip(["conv3", "relu", "add"], ort.InferenceSession(probe.SerializeToString()).run(None, {"x": x}),
                    strict=True))
    outs["x"] = x
    ranges = TensorsData(CalibrationMethod.MinMax, {t: (np.array(v.min(), np.float32), np.array(v.max(), np.float32))
                                                    for t, v in outs.items()})
    q = insert_qdq(model, place(model), ranges)
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    weights = [inits[n.input[0]] for n in q.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert len(weights) == 3 and all(w.dtype == np.int8 and np.abs(w).max() == 127 for w in weights)
    assert "conv1.w" not in inits and "conv1.b" in inits  # fp32 weights replaced; biases stay float
    got = ort.InferenceSession(q.SerializeToString()).run(None, {"x": x})[0]
    ref = outs["conv3"]
    assert 0 < np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sr_deploy.export.onnx import export_onnx

    return export_onnx("srresnet-x4", tmp_path_factory.mktemp("shipped") / "srresnet-x4.onnx").path


def test_shipped_model_tensorrt_layout_follows_the_rules(shipped_onnx: Path, tmp_path: Path) -> None:
    # what export_int8 writes for target="tensorrt" (its quantizer), calibrated on one image to stay fast
    from sr_deploy.export.calibration import calibration_set
    from sr_deploy.export.qdq import LAYOUTS, Quantizer, compute_ranges

    fp32 = onnx.load(str(shipped_onnx))
    layout = LAYOUTS["tensorrt"]
    quantizer = Quantizer(shipped_onnx, compute_ranges(shipped_onnx, calibration_set(None, 4, 1), layout), layout,
                          tmp_path)
    quantizer.quantize([], tmp_path / "m.int8.onnx")
    q = onnx.load(str(tmp_path / "m.int8.onnx"))
    producers = {o: n for n in q.graph.node for o in n.output}
    inits = {t.name for t in q.graph.initializer}

    def activation_pair(node: onnx.NodeProto, i: int) -> bool:
        dq = producers.get(node.input[i])
        return dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] not in inits

    nodes = {n.name: n for n in q.graph.node}
    convs = [n.name for n in fp32.graph.node if n.op_type == "Conv"]
    adds = [n for n in fp32.graph.node if n.op_type == "Add"]
    assert len(convs) == 37 and len(adds) == 17
    assert all(activation_pair(nodes[c], 0) for c in convs)
    # input 0 is the identity of every residual Add of SRResNet (x + body(x), feat + trunk(feat))
    assert all(activation_pair(nodes[a.name], 0) and not activation_pair(nodes[a.name], 1) for a in adds)
    activation_pairs = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert len(activation_pairs) == 37 + 17  # ModelOpt's count; nothing else (no pair after a PReLU's input etc.)
    groups = quantizer.groups()
    assert len(groups) == 37 and sum(1 for g in groups.values() if g[-1].endswith("Add")) == 17
    assert groups["/head/head.0/Conv"] == ["/head/head.0/Conv", "/head/head.1/PRelu"]
