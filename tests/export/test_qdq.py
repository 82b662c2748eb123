from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from sr_deploy.export.calibration import calibration_set
from sr_deploy.export.qdq import LAYOUTS, Quantizer, compute_ranges, float_nodes, quantizable_nodes


def test_calibration_methods_give_different_scales(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    calib = calibration_set(None, 4, num_images=3)
    layout = LAYOUTS["tensorrt"]
    scales = {}
    for method in ("minmax", "percentile", "entropy"):
        ranges = compute_ranges(trained_tiny_onnx, calib, layout, method, bins=512, percentile=99.9)
        out = tmp_path / f"{method}.onnx"
        work = tmp_path / method if (tmp_path / method).mkdir() is None else ""
        Quantizer(trained_tiny_onnx, ranges, layout, work).quantize([], out)
        model = onnx.load(str(out))
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        scales[method] = {
            n.input[0]: float(inits[n.input[1]])
            for n in model.graph.node
            if n.op_type == "QuantizeLinear" and inits[n.input[1]].size == 1
        }
    names = sorted(scales["minmax"])
    assert names == sorted(scales["entropy"]) == sorted(scales["percentile"])
    mm, pc, en = (np.array([scales[m][n] for n in names]) for m in ("minmax", "percentile", "entropy"))
    # clipping methods never exceed the observed extremes; on real activations percentile clips most tensors and
    # entropy clips some (how many depends on the trained weights, which differ per CPU class: 5 of 12 on an
    # AVX2-only Zen 3, more than half on AVX-512 CPUs)
    assert (pc <= mm * (1 + 1e-6)).all() and (en <= mm * (1 + 1e-6)).all()
    assert (pc < mm * 0.99).mean() > 0.5 and (en < mm * 0.99).any()
    assert not np.allclose(pc, en)


def test_quantizable_nodes_and_excluded_stay_float(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    model = onnx.load(str(trained_tiny_onnx))
    layout = LAYOUTS["ort-cpu"]
    nodes = quantizable_nodes(model, layout)
    assert len(nodes) == 11  # 8 convs + 3 adds; the 16->3 output conv is float in this layout
    assert float_nodes(model, layout) == ["/tail/Conv"] and "/tail/Conv" not in nodes
    # TensorRT's rules: the candidates are the 9 convolutions, each heading its fusion group (a residual Add is
    # int8 exactly when the convolution it fuses into is)
    assert float_nodes(model, LAYOUTS["tensorrt"]) == []
    assert quantizable_nodes(model, LAYOUTS["tensorrt"]) == [n.name for n in model.graph.node if n.op_type == "Conv"]
    ranges = compute_ranges(trained_tiny_onnx, calibration_set(None, 4, num_images=1), layout)
    out = tmp_path / "q.onnx"
    Quantizer(trained_tiny_onnx, ranges, layout, tmp_path).quantize([nodes[0]], out)
    q = onnx.load(str(out))
    head = next(n for n in q.graph.node if n.name == nodes[0])
    producers = {o: n.op_type for n in q.graph.node for o in n.output}
    assert head.input[0] == "lr" and producers.get(head.input[1]) is None  # float input and float weights
    tail = next(n for n in q.graph.node if n.name == "/tail/Conv")
    assert producers[tail.input[0]] != "DequantizeLinear" and producers.get(tail.input[1]) is None
    assert any(producers.get(n.input[1]) == "DequantizeLinear" for n in q.graph.node if n.name == nodes[1])
