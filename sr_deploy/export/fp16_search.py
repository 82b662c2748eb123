"""Which nodes of an fp32 ONNX model must stay fp32 when the rest runs in fp16, found by measurement.

Works on any image-to-image ONNX graph (node patterns and tensor types, no layer names). Three
measured steps over real inputs: the calibration crops, and for magnitudes also a large LR input (a
photo at its own resolution, default 512 x 512: activations that grow with the image, such as sums
over pixels, overflow only there):

1. **Overflow** (crops and the large input). The fp32 model runs with the max, min and sum of every
   float tensor computed inside the graph (nothing is copied out: memory stays that of one
   inference). A node whose output or weights exceed ``65504 / margin`` stays fp32 (``overflow``),
   and so does every node reading such an activation (``reads-overflow``: in fp16 its input would be
   cast to inf).
2. **Non-finite in fp16** (crops). fp16 execution is emulated on ONNX Runtime CPU
   (:func:`emulate_fp16`: every fp16 node's float inputs, weights and outputs are rounded to fp16 with
   ``Cast`` pairs, ``|x| > 65504`` becoming inf, while its arithmetic is float32: fp16 storage with
   fp32 accumulation, what GPU fp16 kernels store between layers). ONNX Runtime's own fp16 run on CPU
   cannot show this: it computes fp16 nodes in fp32 and removes the casts between them, so an
   overflowing tensor never reaches fp16 there. The first node (in graph order) whose output is
   inf/NaN in the emulation but finite in fp32 stays fp32 (``non-finite``); if it already is, the
   fp16 nodes feeding it (their rounding or underflow, e.g. a variance that becomes 0 before a
   division) stay fp32 (``feeds-non-finite``); repeated until every tensor is finite.
3. **Accuracy budget** (``max_psnr_drop``), the fp16 counterpart of :mod:`.sensitivity` (its
   validation pairs, Y-PSNR scoring and search, :func:`.sensitivity.measured_cut`): each remaining
   node's error when it alone is fp16 (emulated; Y MSE against the fp32 output), nodes ordered from the least error,
   the additive prediction of the drop as the first ``k`` become fp16, then the real (emulated)
   drop measured and the cut moved by binary search to the most fp16 nodes within budget. What fp16
   buys is not proportional to a node's work the way int8's is, so this keeps the fewest nodes fp32.

Not emulated: kernels that accumulate in fp16 (some reductions, attention) and layer fusion (a fused
kernel rounds less often than the emulation, so the emulation errs towards caution).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sr_deploy.artifacts import atomic_write_bytes
from sr_deploy.backends import onnxrt
from sr_deploy.data.datasets import EvalPair
from sr_deploy.data.image_io import read_image, to_float_rgb
from sr_deploy.data.imresize import imresize
from sr_deploy.errors import ExportError
from sr_deploy.export.sensitivity import measured_cut, outputs_of
from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.scoring import mean_y_psnr

FP16_MAX = 65504.0
#: The converter's floor for non-zero weights (smallest fp16 subnormal).
FP16_TINY = 5.96e-08
DEFAULT_MARGIN = 4.0
#: Side (LR pixels) of the large calibration input; 0 or None: none.
DEFAULT_LARGE = 512

OVERFLOW = "overflow"
READS_OVERFLOW = "reads-overflow"
NON_FINITE = "non-finite"
FEEDS_NON_FINITE = "feeds-non-finite"
ACCURACY = "accuracy"


def shape_text(shape: Sequence[int]) -> str:
    """``(1, 3, 512, 512)`` -> ``"1x3x512x512"``."""
    return "x".join(str(int(d)) for d in shape)


@dataclass(frozen=True)
class Fp32Node:
    """Why a node stays fp32: ``reason`` (one of the constants above), the ``tensor`` concerned, its
    fp32 peak ``max_abs``, the model ``input`` shape (``NxCxHxW``, or ``weights``) where it was seen,
    and for ``accuracy`` the Y-PSNR ``drop_db`` the node alone in fp16 predicts."""

    reason: str
    tensor: str = ""
    max_abs: float | None = None
    input: str = ""
    drop_db: float | None = None

    def describe(self) -> str:
        """One line for people, e.g. ``overflow: writes /x |x| 1.2e+06 at 1x3x512x512``."""
        where = f" at {self.input}" if self.input else ""
        peak = f" |x| {self.max_abs:.3g}" if self.max_abs is not None else ""
        text = {
            OVERFLOW: f"writes {self.tensor}{peak}{where}",
            READS_OVERFLOW: f"reads {self.tensor}{peak}{where}",
            NON_FINITE: f"{self.tensor} is inf/NaN in fp16{where}",
            FEEDS_NON_FINITE: f"its fp16 output makes {self.tensor} inf/NaN{where}",
            ACCURACY: f"alone in fp16 costs {self.drop_db or 0.0:.2g} dB Y-PSNR (predicted)",
        }[self.reason]
        return f"{self.reason}: {text}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}


@dataclass
class TensorPeak:
    """Largest ``|x|`` of a tensor over the inputs and the input shape it was seen at; ``non_finite``:
    the first input shape at which the tensor held inf or NaN (``""``: never)."""

    max_abs: float = 0.0
    input: str = ""
    non_finite: str = ""


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name (``<op>_<index>``) in place: fp32 nodes are chosen by name."""
    taken = {n.name for n in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name, k = f"{node.op_type}_{i}", 0
            while name in taken:
                k += 1
                name = f"{node.op_type}_{i}_{k}"
            node.name = name
            taken.add(name)


def float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the float32 tensors of ``model``: graph inputs, initializers and node outputs (types
    from ONNX Runtime's own inference, so it holds for any operator ONNX Runtime runs)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=o) for n in probe.graph.node for o in n.output
                              if o and o not in existing)
    session = onnxrt.session(probe.SerializeToString())
    names = {o.name for o in session.get_outputs() if o.type == "tensor(float)"}
    names |= {i.name for i in session.get_inputs() if i.type == "tensor(float)"}
    return names | {t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT}


def tensor_peaks(
    model: onnx.ModelProto, tensors: Collection[str], inputs: Sequence[np.ndarray]
) -> dict[str, TensorPeak]:
    """:class:`TensorPeak` of each of ``tensors`` (float node outputs of ``model``) over ``inputs``
    (each a ``N x C x H x W`` float32 batch), reduced inside the graph to its max, min and sum (a NaN
    makes the sum NaN), so nothing is copied out; run in priority order, so memory stays near that of
    one inference."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    wanted = set(tensors)
    names = [o for node in model.graph.node for o in node.output if o in wanted]
    index = {name: i for i, name in enumerate(names)}
    stats = ("ReduceMax", "ReduceMin", "ReduceSum")
    nodes: list[onnx.NodeProto] = []
    for node in probe.graph.node:  # each tensor's reductions right after its producer
        nodes.append(node)
        nodes.extend(helper.make_node(op, [out], [f"sr_deploy.peak{index[out]}/{op}"],
                                      name=f"sr_deploy.peak{index[out]}/{op}", keepdims=0)
                     for out in node.output if out in index for op in stats)
    del probe.graph.node[:]
    probe.graph.node.extend(nodes)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.ValueInfoProto(name=f"sr_deploy.peak{i}/{op}")
                              for i in range(len(names)) for op in stats)
    session = onnxrt.session(probe.SerializeToString(), priority_order=True)
    feed_name = session.get_inputs()[0].name
    peaks = {name: TensorPeak() for name in names}
    for batch in inputs:
        where = shape_text(batch.shape)
        values = session.run(None, {feed_name: batch})
        for i, name in enumerate(names):
            high, low, total = (float(v) for v in values[3 * i : 3 * i + 3])
            entry = peaks[name]
            if not all(map(math.isfinite, (high, low, total))) and not entry.non_finite:
                entry.non_finite = where
            peak = max((abs(v) for v in (high, low) if math.isfinite(v)), default=0.0)
            if peak > entry.max_abs:
                entry.max_abs, entry.input = peak, where
    return peaks


def fp16_round(values: np.ndarray) -> np.ndarray:
    """float32 weights as ``convert_float_to_float16`` stores them (clipped to +-65504, non-zero
    magnitudes below the smallest subnormal raised to it), back in float32."""
    clipped = np.clip(values, -FP16_MAX, FP16_MAX)
    tiny = (clipped != 0) & (np.abs(clipped) < FP16_TINY)
    clipped = np.where(tiny, np.sign(clipped) * FP16_TINY, clipped)
    return clipped.astype(np.float16).astype(np.float32)


def convertible(model: onnx.ModelProto, floats: Collection[str]) -> list[str]:
    """Nodes ``convert_float_to_float16`` would put in fp16 (all but its default op block list) that
    produce a float tensor (``floats``: :func:`float_tensors`): the nodes an fp16 export decides about."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    return [n.name for n in model.graph.node
            if n.op_type not in DEFAULT_OP_BLOCK_LIST and any(o in floats for o in n.output)]


def emulate_fp16(model: onnx.ModelProto, fp32_nodes: Collection[str], floats: Collection[str]) -> onnx.ModelProto:
    """A float32 copy of ``model`` that stores what the fp16 conversion with ``node_block_list =
    fp32_nodes`` stores: every other convertible node reads its float inputs (``floats``) and weights
    rounded to fp16 and has its float outputs rounded to fp16 (``Cast`` to float16 and back, so
    ``|x| > 65504`` becomes inf); its arithmetic stays float32. Tensor names are unchanged."""
    from onnxruntime.transformers.float16 import ALWAYS_FLOAT_INPUTS

    half = set(convertible(model, floats)) - set(fp32_nodes)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    rounded: dict[str, str] = {}  # tensor -> its fp16-rounded copy

    def cast_pair(src: str, dst: str) -> None:
        nodes.append(helper.make_node("Cast", [src], [f"{dst}/sr_deploy.fp16"], name=f"{dst}/sr_deploy.to_fp16",
                                      to=TensorProto.FLOAT16))
        nodes.append(helper.make_node("Cast", [f"{dst}/sr_deploy.fp16"], [dst], name=f"{dst}/sr_deploy.to_fp32",
                                      to=TensorProto.FLOAT))

    def rounded_copy(name: str) -> str:
        if name not in rounded:
            rounded[name] = f"{name}/sr_deploy.rounded"
            if name in inits:
                values = fp16_round(numpy_helper.to_array(inits[name]))
                graph.initializer.append(numpy_helper.from_array(values, rounded[name]))
            else:
                cast_pair(name, rounded[name])
        return rounded[name]

    on_grid: set[str] = set()  # outputs of fp16 nodes: already rounded
    for node in list(graph.node):
        if node.name in half:
            keep_float = ALWAYS_FLOAT_INPUTS.get(node.op_type, [])
            for i, name in enumerate(node.input):
                if name in floats and name not in on_grid and i not in keep_float:
                    node.input[i] = rounded_copy(name)
            nodes.append(node)
            for j, name in enumerate(node.output):
                if name in floats:
                    node.output[j] = f"{name}/sr_deploy.raw"
                    cast_pair(node.output[j], name)
                    on_grid.add(name)
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    for name in rounded.keys() & inits.keys() - used:  # weights only fp16 nodes read
        graph.initializer.remove(inits[name])
    return out


def large_inputs(
    paths: Sequence[str | Path], side: int | None, desc: ModelDescriptor, static: tuple[int, int] | None
) -> list[np.ndarray]:
    """``1 x 3 x side x side`` float32 in [0, 1]: the first of ``paths`` at least that large, taken at
    its own resolution (a large photo as a user upscales it; centre crop), or the largest enlarged by
    bicubic ``imresize``; ``side`` rounded down to the model's ``size_multiple`` (at least
    ``min_size``). None for no side, or a fixed-size model (``static``: only its own size runs)."""
    if not side or static or not paths:
        return []
    side = max(desc.min_size, side - side % desc.size_multiple)
    best = np.zeros((0, 0, 3), dtype=np.float32)
    for path in paths:
        image = to_float_rgb(read_image(path))
        if min(image.shape[:2]) > min(best.shape[:2]):
            best = image
        if min(image.shape[:2]) >= side:
            break
    big = best if min(best.shape[:2]) >= side else imresize(best, side / min(best.shape[:2]))
    y, x = (big.shape[0] - side) // 2, (big.shape[1] - side) // 2
    crop = np.clip(big[y : y + side, x : x + side], 0.0, 1.0)
    return [np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32)]


def overflow_search(
    model: onnx.ModelProto,
    crops: Sequence[np.ndarray],
    large: Sequence[np.ndarray] = (),
    margin: float = DEFAULT_MARGIN,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Fp32Node]:
    """Nodes of ``model`` (named; see :func:`name_nodes`) that must stay fp32 so that fp16 execution
    neither overflows (fp32 magnitudes on ``crops`` and ``large`` inputs, ``N x C x H x W`` float32
    batches) nor produces inf/NaN (emulated fp16 on ``crops``): steps 1 and 2 of the module docstring."""
    note = on_step or (lambda _msg: None)
    floats = float_tensors(model)
    produced = [o for n in model.graph.node for o in n.output if o in floats]
    inputs = [*crops, *large]
    peaks = tensor_peaks(model, produced, inputs)
    for init in model.graph.initializer:
        if init.name in floats and init.dims and math.prod(init.dims):
            peaks[init.name] = TensorPeak(float(np.abs(numpy_helper.to_array(init)).max()), "weights")
    limit = FP16_MAX / margin
    hot = {name for name, p in peaks.items() if p.max_abs > limit}
    kept: dict[str, Fp32Node] = {}
    for node in model.graph.node:
        weights = [i for i in node.input if i in hot and peaks[i].input == "weights"]
        writes = [o for o in node.output if o in hot] + weights
        reads = [i for i in node.input if i in hot]
        if writes or reads:
            tensor = max(writes or reads, key=lambda t: peaks[t].max_abs)
            kept[node.name] = Fp32Node(OVERFLOW if writes else READS_OVERFLOW, tensor, peaks[tensor].max_abs,
                                       peaks[tensor].input)
    computed = [o for n in model.graph.node if n.op_type != "Constant" for o in n.output if o in peaks]
    top = max(computed, key=lambda t: peaks[t].max_abs, default=None)
    if top is not None:
        note(f"largest activation |x| {peaks[top].max_abs:.4g} ({top} at {peaks[top].input}); fp16 limit 65504")
    sizes = ", ".join(sorted({shape_text(b.shape[2:]) for b in inputs}, key=lambda t: int(t.split("x")[0])))
    note(f"range check on {len(inputs)} input batch(es), sizes {sizes}: {len(kept)} node(s) at |x| > {limit:.6g}")
    broken_in_fp32 = {name for name, p in peaks.items() if p.non_finite}
    producer = {o: n for n in model.graph.node for o in n.output}
    for _ in range(len(model.graph.node)):
        emulated = tensor_peaks(emulate_fp16(model, kept, floats), produced, crops)
        bad = next(((n, o) for n in model.graph.node for o in n.output
                    if o in emulated and emulated[o].non_finite and o not in broken_in_fp32), None)
        if bad is None:
            break
        node, tensor = bad
        where = emulated[tensor].non_finite
        if node.name not in kept:
            kept[node.name] = Fp32Node(NON_FINITE, tensor, peaks[tensor].max_abs, where)
            note(f"{node.name}: {kept[node.name].describe()}")
            continue
        feeders = [producer[i].name for i in node.input
                   if i in producer and i in floats and producer[i].name not in kept]
        if not feeders:
            raise ExportError(f"fp16: {tensor} is inf/NaN at input {where} although {node.name} and every node "
                              "feeding it are fp32")
        for name in feeders:
            kept[name] = Fp32Node(FEEDS_NON_FINITE, tensor, peaks[tensor].max_abs, where)
            note(f"{name}: {kept[name].describe()}")
    return kept


@dataclass
class Fp16Budget:
    """The fp16 accuracy search: Y-PSNR (dB) of fp32 (``baseline_psnr``) and of fp16 with only the
    overflow nodes fp32 (``fp16_psnr``, emulated), each candidate's error alone in fp16 (``noise``: Y
    MSE on the 0..255 scale against fp32; ``sensitivity``: the drop in dB it predicts alone), the
    nodes ``kept`` fp32 for accuracy (most error first), the ``predicted`` and measured final drop,
    every measured cut (``cuts``: fp16 candidate count -> drop in dB) and what the search cost."""

    budget_db: float
    baseline_psnr: float
    fp16_psnr: float
    noise: dict[str, float] = field(default_factory=dict)
    sensitivity: dict[str, float] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    predicted_drop: float = math.nan
    final_psnr: float = math.nan
    cuts: dict[int, float] = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0
    validation: dict[str, Any] = field(default_factory=dict)

    @property
    def fp16_drop(self) -> float:
        return self.baseline_psnr - self.fp16_psnr

    @property
    def final_drop(self) -> float:
        return self.baseline_psnr - self.final_psnr

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fp16_drop": self.fp16_drop, "final_drop": self.final_drop,
                "method": "fp16 emulated on ONNX Runtime CPU (fp16 storage, fp32 arithmetic); each node's error "
                          "alone in fp16; the most error kept fp32; cut by measured binary search from the "
                          "additive-noise prediction"}


def accuracy_search(
    model: onnx.ModelProto,
    desc: ModelDescriptor,
    pairs: Sequence[EvalPair],
    budget_db: float,
    fixed: Collection[str] = (),
    on_step: Callable[[str], None] | None = None,
) -> Fp16Budget:
    """Fewest nodes of ``model`` (beyond the ``fixed`` fp32 ones) to keep fp32 so the emulated fp16
    model's mean Y-PSNR drop on ``pairs`` is at most ``budget_db`` (step 3 of the module docstring).

    Costs one evaluation for fp16 with only ``fixed`` fp32, one per candidate (skipped when that is
    already within budget) and about log2(candidates) for the cut.
    """
    if budget_db < 0:
        raise ExportError(f"max_psnr_drop must be >= 0 dB, got {budget_db}")
    start = time.perf_counter()
    note = on_step or (lambda _msg: None)
    floats = float_tensors(model)
    candidates = [n for n in convertible(model, floats) if n not in set(fixed)]
    with tempfile.TemporaryDirectory(prefix="sr-deploy-fp16.") as tmp:
        path = Path(tmp) / "candidate.onnx"

        def outputs(fp32: Collection[str]) -> list[np.ndarray]:
            atomic_write_bytes(path, emulate_fp16(model, [*fixed, *fp32], floats).SerializeToString())
            report.evaluations += 1
            return outputs_of(path, desc, pairs)

        atomic_write_bytes(path, model.SerializeToString())
        reference = outputs_of(path, desc, pairs)
        baseline = mean_y_psnr(reference, pairs, desc.scale)
        report = Fp16Budget(budget_db, baseline, math.nan)
        report.validation = {"crops": len(pairs), "crop": int(pairs[0].lr.shape[0]) if pairs else 0}
        report.fp16_psnr = report.final_psnr = mean_y_psnr(outputs([]), pairs, desc.scale)
        report.cuts[len(candidates)] = report.fp16_drop
        note(f"fp32 {baseline:.3f} dB, fp16 {report.fp16_psnr:.3f} dB (drop {report.fp16_drop:.4f}, emulated)")
        if report.fp16_drop <= budget_db:
            report.seconds = time.perf_counter() - start
            return report
        cut = measured_cut(candidates, outputs, reference, pairs, desc.scale, budget_db, "nodes fp16", note)
        report.noise, report.sensitivity, report.predicted_drop = cut.noise, cut.sensitivity, cut.predicted_drop
        report.cuts.update(cut.cuts)
        report.kept = cut.left_out
        report.final_psnr = cut.final_psnr
    report.seconds = time.perf_counter() - start
    return report
