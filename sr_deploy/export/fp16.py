"""fp32 ONNX -> fp16 ONNX with fp32 I/O, keeping overflow-prone nodes in fp32 (``sr-deploy export fp16``).

Overflow check: the fp32 model runs on the calibration crops with every tensor exposed as an
output; any tensor (activation or weight) whose largest magnitude exceeds ``65504 / margin`` would
overflow (or come too close to) fp16, so the node producing it and every node reading it stay in
fp32 (``node_block_list`` of ``onnxruntime.transformers.float16.convert_float_to_float16``; Cast
nodes are inserted at the boundaries). The converted model must then match the fp32 model on ORT
CPU (PSNR and max-abs gate on real images at two sizes) before it is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.backends import onnxrt
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.compare import Comparison, Tolerance
from sr_deploy.export.calibration import CalibrationSet, calibration_set
from sr_deploy.export.gate import gate_and_write, source_name

FP16_MAX = 65504.0
DEFAULT_MARGIN = 4.0
#: The fp16 gate against fp32: 50 dB and no element off by more than 2 of 255 levels.
FP16_TOLERANCE = Tolerance(min_psnr_db=50.0, atol=2.0 / 255.0)


def tensor_abs_max(model: onnx.ModelProto, calib: CalibrationSet) -> dict[str, float]:
    """Largest ``|value|`` of every float tensor of ``model``: node outputs over the calibration
    crops (run on ORT CPU with all of them exposed as graph outputs) and initializers."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    names = [out for node in probe.graph.node for out in node.output if out and out not in existing]
    probe.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    session = onnxrt.session(probe.SerializeToString())
    outputs = [o.name for o in session.get_outputs()]
    peak = dict.fromkeys(outputs, 0.0)
    for feed in calib.feeds(session.get_inputs()[0].name):
        for name, value in zip(outputs, session.run(outputs, feed), strict=True):
            if np.issubdtype(value.dtype, np.floating) and value.size:
                finite = np.abs(np.nan_to_num(value, nan=np.inf))
                peak[name] = max(peak[name], float(finite.max()))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if np.issubdtype(arr.dtype, np.floating) and arr.size:
            peak[init.name] = float(np.abs(arr).max())
    return peak


def overflow_nodes(
    model: onnx.ModelProto, peak: dict[str, float], margin: float = DEFAULT_MARGIN
) -> dict[str, float]:
    """Nodes that read or write a tensor with ``|x| > 65504 / margin`` -> the largest such ``|x|``."""
    limit = FP16_MAX / margin
    hot = {name for name, value in peak.items() if value > limit}
    found: dict[str, float] = {}
    for node in model.graph.node:
        touched = [peak[t] for t in (*node.input, *node.output) if t in hot]
        if touched:
            found[node.name] = max(touched)
    return found


def drop_cast_round_trips(model: onnx.ModelProto) -> None:
    """Remove ``Cast(to fp16) -> Cast(to fp32)`` chains in place, feeding the fp32 tensor directly.

    ``convert_float_to_float16`` casts a blocked node's output to fp16 and back even when the
    consumer is blocked too, so an overflowing tensor between two fp32 nodes would still pass
    through fp16 (and become inf); this keeps it in fp32. Graph outputs keep their names.
    """

    def cast_to(node: onnx.NodeProto) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    producer = {out: node for node in model.graph.node for out in node.output}
    graph_outputs = {o.name for o in model.graph.output}
    rename = {}
    for node in model.graph.node:
        keep = cast_to(node) != onnx.TensorProto.FLOAT or node.output[0] in graph_outputs
        first = None if keep else producer.get(node.input[0])
        if first is not None and cast_to(first) == onnx.TensorProto.FLOAT16:
            rename[node.output[0]] = first.input[0]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    while True:
        used = {name for node in model.graph.node for name in node.input} | graph_outputs
        dead = [n for n in model.graph.node if n.op_type == "Cast" and n.output[0] not in used]
        if not dead:
            return
        for node in dead:
            model.graph.node.remove(node)


def topological_sort(model: onnx.ModelProto) -> None:
    """Reorder ``model.graph.node`` in place so every node comes after the producers of its inputs
    (``convert_float_to_float16`` appends its Cast nodes at the end, which ``onnx.checker`` rejects)."""
    nodes = list(model.graph.node)
    ready = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | {""}
    ordered: list[onnx.NodeProto] = []
    while nodes:
        runnable = [n for n in nodes if all(i in ready for i in n.input)]
        if not runnable:
            raise ValueError(f"graph has a cycle or a dangling input near node {nodes[0].name!r}")
        for node in runnable:
            ordered.append(node)
            ready.update(node.output)
        nodes = [n for n in nodes if all(n is not r for r in runnable)]
    del model.graph.node[:]
    model.graph.node.extend(ordered)


@dataclass(frozen=True)
class Fp16Result:
    """What ``export_fp16`` wrote: ``path``, the nodes kept in fp32 (name -> peak ``|x|``), the
    calibration data used for the overflow check and the parity gate it passed."""

    path: Path
    fp32_nodes: dict[str, float]
    calibration: dict[str, object]
    parity: Comparison

    def __fspath__(self) -> str:
        return str(self.path)


def export_fp16(
    model: str | os.PathLike[str] | onnx.ModelProto,
    output: str | os.PathLike[str],
    *,
    calib: str | os.PathLike[str] | None = None,
    margin: float = DEFAULT_MARGIN,
    num_images: int | None = None,
) -> Fp16Result:
    """Convert an sr-deploy fp32 ONNX model (a path or an ``onnx.ModelProto``) to fp16 weights and
    compute with float32 I/O; returns an :class:`Fp16Result` (usable as the path).

    ``calib``: folder of images for the overflow check (default: embedded training photos);
    ``num_images``: use at most this many of them. ``margin``: nodes whose tensors exceed
    ``65504 / margin`` stay fp32.
    Raises :class:`~sr_deploy.errors.ExportError` for a bad input file and
    :class:`~sr_deploy.errors.ParityError` when the fp16 model disagrees with fp32 (PSNR <
    50 dB or max-abs > 2/255 on any batch); nothing is written then.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if margin < 1.0:
        raise ValueError(f"the fp16 safety margin must be >= 1, got {margin}")
    fp32, desc = meta.load_sr_onnx(model, "fp32")
    cset = calibration_set(calib, desc.scale, num_images)
    blocked = overflow_nodes(fp32, tensor_abs_max(fp32, cset), margin)
    half = convert_float_to_float16(
        fp32, keep_io_types=True, node_block_list=sorted(blocked), max_finite_val=FP16_MAX
    )
    drop_cast_round_trips(half)
    topological_sort(half)
    meta.write_props(
        half,
        {
            meta.PRECISION: "fp16",
            meta.SOURCE: source_name(model),
            meta.FP32_NODES: {"margin": margin, "limit": FP16_MAX / margin, "nodes": blocked},
        },
    )
    with OrtUpscaler(fp32.SerializeToString(), descriptor=desc) as reference:
        report = gate_and_write(reference, half, output, desc, FP16_TOLERANCE, "ONNX Runtime fp16 vs fp32")
    return Fp16Result(Path(output), blocked, cset.describe(), report)
