"""fp32 ONNX -> fp16 ONNX with fp32 I/O, keeping in fp32 only the nodes that need it (``sr-deploy export fp16``).

Which nodes stay fp32 is measured (:mod:`.fp16_search`): nodes whose tensors overflow fp16 (beyond
``65504 / margin``) or become inf/NaN in emulated fp16 execution, on the calibration crops and a large
input; with ``max_psnr_drop``, also the fewest nodes that hold the Y-PSNR drop within that budget.
Conversion by ``onnxruntime.transformers.float16.convert_float_to_float16`` with those nodes in its
``node_block_list`` (Cast nodes at the boundaries). Why each node was kept is recorded in the
``sr_deploy.fp32_nodes`` metadata. Without a budget the converted model must match the fp32 model on
ORT CPU (PSNR and max-abs gate on real images at two sizes) before it is written; with one, its
outputs must be finite and its Y-PSNR drop on ORT CPU within the budget too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from sr_deploy.artifacts import WrittenFile, atomic_write_bytes
from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.compare import Comparison, Tolerance
from sr_deploy.errors import ExportError, ParityError
from sr_deploy.export.calibration import calibration_set
from sr_deploy.export.fp16_search import (
    ACCURACY,
    DEFAULT_LARGE,
    DEFAULT_MARGIN,
    FP16_MAX,
    Fp16Budget,
    Fp32Node,
    accuracy_search,
    large_inputs,
    name_nodes,
    overflow_search,
    shape_text,
)
from sr_deploy.export.gate import gate_and_write, source_name
from sr_deploy.export.sensitivity import outputs_of, validation_pairs
from sr_deploy.scoring import mean_y_psnr

#: The fp16 gate against fp32: 50 dB and no element off by more than 2 of 255 levels.
FP16_TOLERANCE = Tolerance(min_psnr_db=50.0, atol=2.0 / 255.0)


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
class Fp16Result(WrittenFile):
    """What ``export_fp16`` wrote: ``path``, the nodes kept in fp32 (name -> :class:`Fp32Node`, why),
    the ``calibration`` data used, the parity gate it passed, the accuracy search (``budget``, None
    without ``max_psnr_drop``) and, with a budget, the written file's Y-PSNR drop on ORT CPU."""

    fp32_nodes: dict[str, Fp32Node]
    calibration: dict[str, object]
    parity: Comparison
    budget: Fp16Budget | None = None
    ort_drop_db: float | None = None


def export_fp16(
    model: str | os.PathLike[str] | onnx.ModelProto,
    output: str | os.PathLike[str],
    *,
    calib: str | os.PathLike[str] | None = None,
    margin: float = DEFAULT_MARGIN,
    num_images: int | None = None,
    large: int | None = DEFAULT_LARGE,
    max_psnr_drop: float | None = None,
    val: str | os.PathLike[str] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Fp16Result:
    """Convert an sr-deploy fp32 ONNX model (a path or an ``onnx.ModelProto``) to fp16 weights and
    compute with float32 I/O; returns an :class:`Fp16Result` (usable as the path).

    ``calib``: folder of images for the overflow search (default: embedded training photos);
    ``num_images``: use at most this many of them; ``large``: side in LR pixels of the large input
    (one of those photos at its own resolution; None or 0: none). ``margin``: nodes whose tensors
    exceed ``65504 / margin`` stay fp32. ``max_psnr_drop``: Y-PSNR budget (dB, against fp32, on the
    ``val`` crops, default the embedded evaluation photos): also keep the fewest nodes fp32 that hold
    it. ``on_step``: receives progress lines.
    Raises :class:`~sr_deploy.errors.ExportError` for bad input and
    :class:`~sr_deploy.errors.ParityError` when the fp16 model fails its gate (without a budget: PSNR
    < 50 dB or max-abs > 2/255 against fp32 on any batch; with one: non-finite outputs or a drop over
    budget on ORT CPU); nothing is written then.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    if margin < 1.0:
        raise ValueError(f"the fp16 safety margin must be >= 1, got {margin}")
    if large is not None and large < 0:
        raise ExportError(f"the large input's side must be >= 0 LR pixels (0: none), got {large}")
    loaded, desc = meta.load_sr_onnx(model, "fp32")
    fp32 = onnx.ModelProto()
    fp32.CopyFrom(loaded)
    name_nodes(fp32)
    if desc.fixed_size is not None and desc.fixed_size[0] != desc.fixed_size[1]:
        raise ExportError(f"fp16 needs square crops; this export's fixed input is {desc.fixed_size}")
    sizes = {} if desc.fixed_size is None else {"crop": desc.fixed_size[0]}  # a fixed-shape export runs one size
    cset = calibration_set(calib, desc.scale, num_images, **sizes)
    crops = [c[None] for batch in cset.batches for c in batch]  # one image per run (fixed-shape: batch 1)
    big = large_inputs(cset.images, large, desc, desc.fixed_size or meta.static_size(fp32))
    kept = overflow_search(fp32, crops, big, margin, on_step)
    budget = pairs = None
    if max_psnr_drop is not None:
        pairs = validation_pairs(val, desc.scale, **sizes)
        budget = accuracy_search(fp32, desc, pairs, max_psnr_drop, kept, on_step)
        kept.update({n: Fp32Node(ACCURACY, drop_db=budget.sensitivity[n]) for n in budget.kept})
    half = convert_float_to_float16(
        fp32, keep_io_types=True, node_block_list=sorted(kept), max_finite_val=FP16_MAX
    )
    drop_cast_round_trips(half)
    topological_sort(half)
    calibration = {**cset.describe(), "large": [shape_text(b.shape) for b in big]}
    record: dict[str, object] = {
        "margin": margin,
        "limit": FP16_MAX / margin,
        "nodes": {n: kept[n].to_dict() for n in sorted(kept)},
        "calibration": calibration,
    }
    ort_drop = None
    if budget and pairs:
        with tempfile.TemporaryDirectory(prefix="sr-deploy-fp16.") as tmp:
            atomic_write_bytes(Path(tmp) / "fp16.onnx", half.SerializeToString())
            ort_drop = budget.baseline_psnr - mean_y_psnr(outputs_of(Path(tmp) / "fp16.onnx", desc, pairs),
                                                          pairs, desc.scale)
        if ort_drop > budget.budget_db:
            raise ParityError(f"fp16 model loses {ort_drop:.4f} dB Y-PSNR on ONNX Runtime CPU, over the "
                              f"{budget.budget_db:g} dB budget; {output} not written", None)
        record.update(max_psnr_drop_db=budget.budget_db, emulated_drop_db=budget.final_drop, ort_cpu_drop_db=ort_drop)
    meta.write_props(half, {meta.PRECISION: "fp16", meta.SOURCE: source_name(model), meta.FP32_NODES: record})
    with OrtUpscaler(fp32.SerializeToString(), descriptor=desc) as reference:
        report = gate_and_write(reference, half, output, desc, Tolerance() if budget else FP16_TOLERANCE,
                                "ONNX Runtime fp16 vs fp32")
    return Fp16Result(Path(output), kept, calibration, report, budget, ort_drop)
