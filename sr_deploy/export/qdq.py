"""int8 Q/DQ machinery on ORT quantization tools: layouts, calibrate once, quantize many times.

Weights are int8, symmetric, per output channel. Two layouts of the QuantizeLinear /
DequantizeLinear pairs:

- ``tensorrt``: int8 activations, symmetric (zero point 0, TensorRT's only mode), placed by TensorRT's
  Q/DQ placement rules (:mod:`sr_deploy.export.placement`: every Conv's activation input and weights,
  the identity input of a residual Add only so the Add fuses into its convolution, nothing between a
  Conv and its activation, pairs moved across PixelShuffle/PixelUnshuffle, one scale across a Concat),
  never on outputs; each consumer input gets its own pair; biases stay float (TensorRT quantizes them
  itself). The pairs are written by :func:`insert_qdq` (scale = range / 127), not by ORT's
  ``quantize_static``, whose op-type lists cannot express these rules.
- ``ort-cpu``: uint8 activations (asymmetric) with int8 weights (u8s8), Q/DQ around Conv and Add
  inputs and outputs, the pattern ONNX Runtime's CPU provider fuses into QLinearConv / QLinearAdd.
  Convolutions with fewer than 8 output channels stay float: MLAS's u8s8 QLinearConv is several
  times slower than its fp32 NCHWc convolution for SRResNet's 64->3 9x9 output layer at HR
  resolution (measured with ORT's profiler on this project's CPU machine), and that layer alone
  costs more than the whole trunk.

Calibration methods (ranges of every tensor the layout quantizes, from
:mod:`sr_deploy.export.calibration` crops): ``minmax`` (observed extremes), ``percentile`` (the
``percentile``-th percentile of |x| in a ``bins``-bin histogram) and ``entropy`` (TensorRT-style
KL-divergence threshold over a ``bins``-bin histogram quantized to 128 levels; ORT's search, vectorized in
:mod:`sr_deploy.export.entropy`). ORT's
``quantize_static`` cannot pass a bin count to its entropy calibrator (it uses 128 bins and 128
levels, which makes it pick the max, i.e. minmax), so the calibrator is built here with
``create_calibrator`` and its ranges are handed to ``quantize_static`` through a calibration cache,
which also lets the accuracy-budget search quantize many times from one calibration pass.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from sr_deploy.errors import ExportError
from sr_deploy.export.calibration import CalibrationSet
from sr_deploy.export.entropy import entropy_threshold
from sr_deploy.export.placement import CALIBRATED_OP_TYPES, Placement, place

METHODS = ("minmax", "percentile", "entropy")
#: The default calibration: the best measured (benchmarks/results/*/int8_calibration.md: entropy over 2048 bins
#: lost 0.113 / 0.068 dB on Set5 / Set14 in the ort-cpu layout, against 0.133 / 0.077 for minmax and 0.130 /
#: 0.077 for percentile; the same order in the tensorrt layout).
DEFAULT_METHOD = "entropy"
DEFAULT_BINS = 2048
DEFAULT_PERCENTILE = 99.999
ENTROPY_QUANTIZED_BINS = 128


@dataclass(frozen=True)
class Layout:
    """Where Q/DQ pairs go and in which types, for one deployment target."""

    name: str
    symmetric_activations: bool
    op_types: tuple[str, ...]
    extra_options: dict[str, Any] = field(default_factory=dict)
    min_conv_outputs: int = 0  # Convs with fewer output channels are never quantized
    rules: bool = False  # placed by TensorRT's rules (sr_deploy.export.placement), else by ORT's quantize_static


LAYOUTS = {
    "tensorrt": Layout("tensorrt", symmetric_activations=True, op_types=CALIBRATED_OP_TYPES, rules=True),
    "ort-cpu": Layout(
        "ort-cpu",
        symmetric_activations=False,
        op_types=("Conv", "Add"),
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        min_conv_outputs=8,
    ),
}


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    if name not in METHODS:
        raise ExportError(f"unknown calibration method {name!r}; choose from {METHODS}")
    return {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[name]


@contextlib.contextmanager
def _quiet_ort_logging() -> Iterator[None]:
    """Silence ``quantize_static``'s root-logger advice ("consider pre-processing") for one call."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


class _Reader:
    """``CalibrationDataReader`` over a :class:`CalibrationSet` (one crop per call)."""

    def __init__(self, calib: CalibrationSet, input_name: str) -> None:
        self._feeds = calib.feeds(input_name)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


def calibrated(
    model_path: str | os.PathLike[str],
    calib: CalibrationSet,
    layout: Layout,
    method: str = "minmax",
    bins: int = DEFAULT_BINS,
    percentile: float = DEFAULT_PERCENTILE,
) -> Any:
    """ONNX Runtime's calibrator for ``method`` after one pass over all calibration crops: the observed values of
    every input and output tensor of the layout's op types (for ``percentile`` and ``entropy``, a ``bins``-bin
    histogram per tensor in ``.collector.histogram_dict``)."""
    from onnxruntime.quantization import create_calibrator

    options: dict[str, Any] = {"symmetric": layout.symmetric_activations}
    if method != "minmax":
        if bins < ENTROPY_QUANTIZED_BINS:
            raise ExportError(f"bins must be >= {ENTROPY_QUANTIZED_BINS}, got {bins}")
        options.update(num_bins=bins, num_quantized_bins=ENTROPY_QUANTIZED_BINS, percentile=percentile)
    input_name = onnx.load(str(model_path), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="sr-deploy-calib.") as tmp, contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(
            Path(model_path),
            list(layout.op_types),
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_method(method),
            extra_options=options,
        )
        calibrator.collect_data(_Reader(calib, input_name))
    return calibrator


def compute_ranges(
    model_path: str | os.PathLike[str],
    calib: CalibrationSet,
    layout: Layout,
    method: str = "minmax",
    bins: int = DEFAULT_BINS,
    percentile: float = DEFAULT_PERCENTILE,
) -> Any:
    """Run the calibrator once: ``onnxruntime.quantization.TensorsData`` with the range of every
    input and output tensor of the layout's op types over all calibration crops."""
    from onnxruntime.quantization import CalibrationMethod, TensorsData

    calibrator = calibrated(model_path, calib, layout, method, bins, percentile)
    if method == "entropy":  # ORT's own threshold search takes ~0.5 s per tensor; the same, vectorized
        histograms = calibrator.collector.histogram_dict
        return TensorsData(
            CalibrationMethod.Entropy,
            {t: (*entropy_threshold(h, ENTROPY_QUANTIZED_BINS), *h[:2]) for t, h in histograms.items()},
        )
    with contextlib.redirect_stdout(io.StringIO()):
        return calibrator.compute_data()


def _kept_float(node: onnx.NodeProto, weights: dict[str, onnx.TensorProto], layout: Layout) -> bool:
    """Whether the layout always leaves ``node`` in float (a Conv with too few output channels)."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in weights:
        return False
    return weights[node.input[1]].dims[0] < layout.min_conv_outputs


def _partition(model: onnx.ModelProto, layout: Layout) -> tuple[list[str], list[str]]:
    """Names of the layout's candidate nodes, in graph order: (quantizable, always left in float). With
    TensorRT's rules the candidates are the Convs, each heading its fusion group (:func:`fusion_groups`)."""
    if layout.rules:
        return place(model).weights, []
    weights = {t.name: t for t in model.graph.initializer}
    quantizable: list[str] = []
    kept: list[str] = []
    for node in model.graph.node:
        if node.op_type in layout.op_types:
            (kept if _kept_float(node, weights, layout) else quantizable).append(node.name)
    return quantizable, kept


def quantizable_nodes(model: onnx.ModelProto, layout: Layout) -> list[str]:
    """Names of the nodes the layout quantizes (the candidates for exclusion), in graph order."""
    return _partition(model, layout)[0]


def float_nodes(model: onnx.ModelProto, layout: Layout) -> list[str]:
    """Names of the nodes of the layout's op types that it always leaves in float."""
    return _partition(model, layout)[1]


def fusion_groups(model: onnx.ModelProto, layout: Layout, exclude: Sequence[str] = ()) -> dict[str, list[str]]:
    """The candidates the layout quantizes with ``exclude`` left float, each with the nodes that run int8 with
    it: TensorRT's fusion groups (Conv, fused activation, fused residual Add) for the ``tensorrt`` layout, the
    node alone for ``ort-cpu``."""
    if layout.rules:
        return place(model, exclude).groups
    return {n: [n] for n in quantizable_nodes(model, layout) if n not in set(exclude)}


def _absmax(ranges: Any, tensor: str) -> float:
    if tensor not in ranges:
        raise ExportError(f"no calibration range for tensor {tensor!r}")
    low, high = ranges[tensor].range_value
    return max(abs(float(np.min(low))), abs(float(np.max(high))))


def insert_qdq(model: onnx.ModelProto, placement: Placement, ranges: Any) -> onnx.ModelProto:
    """A copy of ``model`` with the Q/DQ pairs of ``placement``: symmetric int8 activations, scale = the
    calibrated range (``ranges``: tensor -> ``TensorData`` with ``range_value``; the largest one across a
    shared-scale group) / 127, zero point 0; int8 weights, symmetric per output channel (scale = max |w| / 127,
    values in [-127, 127]) behind a DequantizeLinear; biases float."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    absmax = {s.tensor: _absmax(ranges, s.tensor) for s in placement.sites}
    for group in placement.shared_scales:
        shared = max(_absmax(ranges, t) for t in group)
        absmax.update({t: shared for t in group if t in absmax})
    added: list[onnx.TensorProto] = []
    for tensor, amax in sorted(absmax.items()):
        scale = np.array(amax / 127.0 if amax > 0 else 1.0, np.float32)
        added.append(numpy_helper.from_array(scale, f"{tensor}_scale"))
        added.append(numpy_helper.from_array(np.array(0, np.int8), f"{tensor}_zero_point"))
    before: dict[str, list[onnx.NodeProto]] = {}
    nodes = {n.name: n for n in graph.node}
    for site in placement.sites:
        base = f"{site.node}/input{site.index}"
        q = helper.make_node("QuantizeLinear", [site.tensor, f"{site.tensor}_scale", f"{site.tensor}_zero_point"],
                             [f"{base}/quantized"], name=f"{base}/QuantizeLinear")
        dq = helper.make_node("DequantizeLinear", [q.output[0], *q.input[1:]], [f"{base}/dequantized"],
                              name=f"{base}/DequantizeLinear")
        before.setdefault(site.node, []).extend([q, dq])
        nodes[site.node].input[site.index] = dq.output[0]
    done: dict[str, str] = {}
    for conv in placement.weights:
        node = nodes[conv]
        name = node.input[1]
        if name not in done:
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
            scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
            q = np.clip(np.rint(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
            added += [numpy_helper.from_array(q, f"{name}_quantized"), numpy_helper.from_array(scale, f"{name}_scale"),
                      numpy_helper.from_array(np.zeros_like(scale, np.int8), f"{name}_zero_point")]
            dq = helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"],
                                  [f"{name}_dequantized"], name=f"{name}_DequantizeLinear", axis=0)
            before.setdefault(conv, []).append(dq)
            done[name] = dq.output[0]
        node.input[1] = done[name]
    still_used = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name in still_used]
    del graph.initializer[:]
    graph.initializer.extend([*kept, *added])
    ordered = [m for n in graph.node for m in (*before.get(n.name, []), n)]
    del graph.node[:]
    graph.node.extend(ordered)
    return out


class Quantizer:
    """Quantizes one fp32 model many times from one set of calibration ranges.

    ``quantize(exclude, output)`` writes a Q/DQ model with the ``exclude`` nodes, and the nodes the
    layout always keeps in float (:func:`float_nodes`), left in float.
    ``reduce_range``: 7-bit weights, for x86 CPUs without VNNI (ORT's advice for u8s8).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        ranges: Any,
        layout: Layout,
        workdir: str | os.PathLike[str],
        reduce_range: bool = False,
    ) -> None:
        from onnxruntime.quantization import TensorData, TensorsData, save_tensors_data

        self.model_path, self.layout, self.ranges = Path(model_path), layout, ranges
        self.reduce_range = reduce_range
        self.cache = Path(workdir) / "ranges.json"
        # only the ranges: quantize_static reads the cache twice per call, and a histogram calibration's
        # histograms (2048 bins per tensor) made that JSON 7 s of a 60-quantization budget search
        bounds = {t: TensorData(lowest=d.range_value[0], highest=d.range_value[1]) for t, d in ranges.items()}
        save_tensors_data(TensorsData(ranges.calibration_method, bounds), self.cache)
        self.model = onnx.load(str(model_path), load_external_data=False)  # graph and weight shapes
        self.always_float = float_nodes(self.model, layout)

    def groups(self, exclude: Sequence[str] = ()) -> dict[str, list[str]]:
        """:func:`fusion_groups` of this model with ``exclude`` left float."""
        return fusion_groups(self.model, self.layout, exclude)

    def quantize(self, exclude: Sequence[str], output: str | os.PathLike[str]) -> None:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        if self.layout.rules:
            full = onnx.load(str(self.model_path))
            onnx.save(insert_qdq(full, place(full, exclude), self.ranges), str(output))
            return

        activation = QuantType.QInt8 if self.layout.symmetric_activations else QuantType.QUInt8
        with _quiet_ort_logging():
            quantize_static(
                self.model_path,
                output,
                None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(self.layout.op_types),
                per_channel=True,
                reduce_range=self.reduce_range,
                activation_type=activation,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=[*self.always_float, *exclude],
                calibrate_method=self.ranges.calibration_method,
                extra_options=dict(self.layout.extra_options),
                calibration_cache_path=self.cache,
            )
