"""fp32 ONNX -> verified int8 Q/DQ ONNX (``sr-deploy export int8``).

Steps: calibration crops (:mod:`.calibration`) -> tensor ranges, computed once (:mod:`.qdq`) ->
optional accuracy-budget search (:mod:`.sensitivity`) -> final quantization -> metadata
(``sr_deploy.precision = int8``, ``sr_deploy.calibration`` JSON) -> ``onnx.checker`` and a sanity
gate against the fp32 model on ORT CPU on real images at two sizes (finite outputs, and without a
budget PSNR >= 20 dB vs fp32; with a budget, the budget on HR ground truth is the accuracy gate)
-> atomic write of the model and, with a budget, of the JSON report beside it (``<output stem>.report.json``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from sr_deploy.artifacts import WrittenFile, atomic_write_bytes, atomic_write_json, sha256_file
from sr_deploy.backends import onnx_metadata as meta
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.compare import Comparison, Tolerance
from sr_deploy.errors import ExportError
from sr_deploy.export.calibration import calibration_set
from sr_deploy.export.gate import gate_and_write, source_name
from sr_deploy.export.qdq import (
    DEFAULT_BINS,
    DEFAULT_METHOD,
    DEFAULT_PERCENTILE,
    ENTROPY_QUANTIZED_BINS,
    LAYOUTS,
    METHODS,
    Quantizer,
    compute_ranges,
    quantizable_nodes,
)
from sr_deploy.export.sensitivity import MEASURE_ON, BudgetReport, budgeted_exclusion, outputs_of, validation_pairs
from sr_deploy.hardware import CpuInfo, this_cpu
from sr_deploy.scoring import mean_y_psnr

#: Without a budget, a garbage detector against fp32 (with one, the budget on HR ground truth is the gate
#: and only finite outputs are required here).
INT8_SANITY = Tolerance(min_psnr_db=20.0)
#: Without a budget, the most Y-PSNR (dB, on the validation crops) an all-int8 model may lose to be written.
PLAIN_MAX_DROP_DB = 0.3


@dataclass(frozen=True)
class Int8Result(WrittenFile):
    """What ``export_int8`` wrote: the model ``path``, the budget ``report_path`` (None without a
    budget), the ``calibration`` metadata, the sanity gate and the budget search."""

    report_path: Path | None
    calibration: dict[str, object]
    parity: Comparison
    budget: BudgetReport | None


def report_path_for(output: str | os.PathLike[str]) -> Path:
    """``model.int8.onnx`` -> ``model.int8.report.json`` (beside the model)."""
    p = Path(output)
    return p.with_name(p.stem + ".report.json")


def default_reduce_range(target: str, cpu: CpuInfo) -> bool:
    """Whether int8 for ``target`` gets 7-bit weights on ``cpu`` by default: for the ``ort-cpu`` layout
    (uint8 activations x int8 weights) on x86 CPUs without VNNI, whose u8s8 dot products saturate."""
    return not LAYOUTS[target].symmetric_activations and not cpu.vnni


def export_int8(
    model: str | os.PathLike[str] | onnx.ModelProto,
    output: str | os.PathLike[str],
    *,
    target: str = "tensorrt",
    calib: str | os.PathLike[str] | None = None,
    method: str = DEFAULT_METHOD,
    num_images: int | None = None,
    max_psnr_drop: float | None = None,
    val: str | os.PathLike[str] | None = None,
    bins: int = DEFAULT_BINS,
    percentile: float = DEFAULT_PERCENTILE,
    reduce_range: bool | None = None,
    max_plain_drop: float = PLAIN_MAX_DROP_DB,
    measure_on: str = "onnxruntime",
    on_step: Callable[[str], None] | None = None,
) -> Int8Result:
    """Quantize an sr-deploy fp32 ONNX model (a path or an ``onnx.ModelProto``) to int8 Q/DQ for
    ``target`` (``tensorrt`` or ``ort-cpu``); returns an :class:`Int8Result` (usable as the path).

    ``calib`` / ``val``: image folders for calibration and for the budget's validation crops
    (defaults: embedded training / evaluation photos); ``num_images``: calibrate on at most this
    many images. ``method``: ``minmax``, ``percentile`` (``percentile`` of ``|x|`` kept) or
    ``entropy`` (KL over ``bins`` histogram bins). ``max_psnr_drop``: Y-PSNR budget in dB versus
    fp32; layers are left in float until it holds. Without a budget every layer is int8 and the
    model is written only if its drop on the validation crops is at most ``max_plain_drop`` (dB).
    ``reduce_range``: 7-bit weights; None decides from this CPU: on for the ``ort-cpu`` layout (u8s8)
    on x86 CPUs without VNNI, whose u8s8 arithmetic saturates (measured on an AVX2 Zen 3: Set5 drop
    2.27 dB with 8-bit weights, 0.26 dB with 7-bit). The CPU class the drop was measured on is
    recorded (``validated_on`` in the calibration metadata). ``measure_on``: the CPU engine that runs the
    validation crops for the drop and the budget search (``onnxruntime`` or ``openvino``: the one the file is
    meant for; their int8 arithmetic differs). ``on_step``: receives progress lines. Raises
    :class:`~sr_deploy.errors.ExportError` on bad input and :class:`~sr_deploy.errors.ParityError`
    when the result fails the sanity gate; nothing is written then.
    """
    if target not in LAYOUTS:
        raise ExportError(f"unknown int8 target {target!r}; choose from {tuple(LAYOUTS)}")
    if method not in METHODS:
        raise ExportError(f"unknown calibration method {method!r}; choose from {METHODS}")
    if not 0.0 < percentile <= 100.0:
        raise ExportError(f"percentile must be in (0, 100], got {percentile}")
    if max_psnr_drop is not None and max_psnr_drop < 0:
        raise ExportError(f"max_psnr_drop must be >= 0 dB, got {max_psnr_drop}")
    if measure_on not in MEASURE_ON:
        raise ExportError(f"measure_on must be one of {MEASURE_ON}, got {measure_on!r}")
    if reduce_range and LAYOUTS[target].symmetric_activations:
        raise ExportError(f"reduce_range (7-bit weights) is for the u8s8 ort-cpu layout; the {target} layout's "
                          "int8 x int8 arithmetic does not saturate")
    cpu = this_cpu()
    if reduce_range is None:
        reduce_range = default_reduce_range(target, cpu)
    fp32, desc = meta.load_sr_onnx(model, "fp32")
    layout = LAYOUTS[target]
    if desc.fixed_size is not None and desc.fixed_size[0] != desc.fixed_size[1]:
        raise ExportError(f"int8 needs square crops; this export's fixed input is {desc.fixed_size}")
    sizes = {} if desc.fixed_size is None else {"crop": desc.fixed_size[0]}  # a fixed-shape export runs one size
    cset = calibration_set(calib, desc.scale, num_images, **sizes)
    pairs = validation_pairs(val, desc.scale, **sizes)
    with tempfile.TemporaryDirectory(prefix="sr-deploy-int8.") as tmp:
        model_path = Path(tmp) / "fp32.onnx"  # ONNX Runtime's quantization tools read files
        atomic_write_bytes(model_path, fp32.SerializeToString())
        ranges = compute_ranges(model_path, cset, layout, method, bins, percentile)
        quantizer = Quantizer(model_path, ranges, layout, tmp, reduce_range)
        candidates = quantizable_nodes(fp32, layout)
        budget = None
        if max_psnr_drop is not None:
            budget = budgeted_exclusion(quantizer, candidates, pairs, desc, max_psnr_drop, on_step, measure_on)
        excluded = budget.excluded if budget else []
        quantized_path = Path(tmp) / "int8.onnx"
        quantizer.quantize(excluded, quantized_path)
        quantized = onnx.load(str(quantized_path))
        if budget:
            drop = budget.final_drop
        else:
            baseline = mean_y_psnr(outputs_of(model_path, desc, pairs, measure_on), pairs, desc.scale)
            drop = baseline - mean_y_psnr(outputs_of(quantized_path, desc, pairs, measure_on), pairs, desc.scale)
            if on_step:
                on_step(f"all layers int8: Y-PSNR drop {drop:.3f} dB on {len(pairs)} validation crops ({measure_on})")
    if budget is None and drop > max_plain_drop:
        raise ExportError(
            f"int8 ({target} layout, {method} calibration, every layer int8) loses {drop:.3f} dB Y-PSNR on the "
            f"validation crops on this {cpu.isa} CPU ({measure_on}), over the {max_plain_drop:g} dB limit; "
            f"{output} not written. "
            "Give an accuracy budget (max_psnr_drop) to keep the most sensitive layers in float"
            + ("" if reduce_range or layout.symmetric_activations else ", or reduce_range=True (7-bit weights)")
            + ", or try another calibration method")
    calibration = {
        "method": method,
        "layout": target,
        "activations": "int8 symmetric" if layout.symmetric_activations else "uint8 asymmetric",
        "weights": "int8 symmetric per-channel" + (" (7-bit reduce_range)" if reduce_range else ""),
        "weight_bits": 7 if reduce_range else 8,
        "op_types": list(layout.op_types),
        "bins": bins if method != "minmax" else None,
        "entropy_target_levels": ENTROPY_QUANTIZED_BINS if method == "entropy" else None,  # KL: bins -> levels
        "percentile": percentile if method == "percentile" else None,
        "placement": "TensorRT Q/DQ placement rules (sr_deploy.export.placement)" if layout.rules
        else "onnxruntime quantize_static (QDQ, Conv and Add inputs and outputs)",
        "excluded_nodes": list(excluded),
        "fusion_groups_int8": quantizer.groups(excluded),
        "float_by_layout": list(quantizer.always_float),
        "quantized_nodes": len(candidates) - len(excluded),
        **cset.describe(),
    }
    calibration["psnr_drop_db"] = drop
    calibration["validated_on"] = {"cpu": cpu.model, "isa": cpu.isa, "vnni": cpu.vnni, "engine": measure_on,
                                   "validation": {"crops": len(pairs), "folder": str(val) if val else "embedded:eval"},
                                   "psnr_drop_db": drop}
    if budget:
        calibration["max_psnr_drop_db"] = max_psnr_drop
    source = source_name(model)
    meta.write_props(quantized, {meta.PRECISION: "int8", meta.SOURCE: source, meta.CALIBRATION: calibration})
    gate = Tolerance() if budget else INT8_SANITY
    with OrtUpscaler(fp32.SerializeToString(), descriptor=desc) as reference:
        report = gate_and_write(reference, quantized, output, desc, gate, "ONNX Runtime int8 vs fp32 (sanity)")
    report_path = None
    if budget:
        report_path = report_path_for(output)
        atomic_write_json(
            report_path,
            {
                "model": str(output),
                "source": source,
                # the fp32 ONNX's own sha256 (the model metadata's sr_deploy.source_sha256 is the weights')
                "source_onnx_sha256": sha256_file(model) if not isinstance(model, onnx.ModelProto) else None,
                "calibration": calibration,
                "budget": budget.to_dict(),
                "parity_vs_fp32": report.to_dict(),
            },
        )
    return Int8Result(Path(output), report_path, calibration, report, budget)
