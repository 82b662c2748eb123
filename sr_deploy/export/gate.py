"""The export gate: a derived ONNX model must reproduce its reference before it is written.

The reference and the candidate run through the ONNX Runtime backend
(:class:`~sr_deploy.backends.onnxrt.OrtUpscaler`) on real LR crops at two sizes
(:func:`sr_deploy.data.crops.parity_inputs`) and are held to a :class:`~sr_deploy.compare.Tolerance`
by the one comparator (:func:`sr_deploy.compare.compare`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import onnx

from sr_deploy.artifacts import atomic_write_bytes
from sr_deploy.backends.base import Upscaler
from sr_deploy.backends.onnx_metadata import static_size
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.compare import Comparison, Tolerance, compare
from sr_deploy.data.crops import PARITY_SIZES, parity_inputs
from sr_deploy.errors import ExportError, ParityError
from sr_deploy.models.descriptor import ModelDescriptor


def source_name(model: str | os.PathLike[str] | onnx.ModelProto) -> str:
    """What a derived file records as its source: the path, or the in-memory model's graph name."""
    return f"in-memory ONNX {model.graph.name!r}" if isinstance(model, onnx.ModelProto) else str(model)


def parity_sizes(desc: ModelDescriptor) -> list[tuple[int, int, int]]:
    """The gate's ``(N, H, W)`` batches, each side padded up to the model's size rules (multiple, minimum);
    for a fixed-shape export (``desc.fixed_size``) two single-image batches of that size."""
    if desc.fixed_size is not None:
        return [(1, *desc.fixed_size)] * len(PARITY_SIZES)
    return [(n, *desc.fit_size(h, w)) for n, h, w in PARITY_SIZES]


def check_model(model: onnx.ModelProto, what: str) -> None:
    """``onnx.checker`` full check (with shape inference); ExportError naming ``what`` on failure."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{what}: ONNX checker rejected the graph: {exc}") from None


def run_compare(
    reference: Upscaler, candidate: Upscaler, inputs: Sequence[np.ndarray], tolerance: Tolerance, label: str
) -> Comparison:
    """Run both upscalers on every input batch and compare the candidate's outputs with the reference's."""
    return compare([candidate.run(b) for b in inputs], [reference.run(b) for b in inputs], tolerance, label,
                   [tuple(b.shape) for b in inputs])


def require(report: Comparison, destination: str | os.PathLike[str]) -> None:
    """Raise :class:`ParityError` (nothing has been written to ``destination``) unless ``report`` passed."""
    if not report.passed:
        raise ParityError(f"parity gate failed, {destination} not written: {report.summary()}", report)


def gate_and_write(
    reference: Upscaler,
    derived: onnx.ModelProto,
    output: str | os.PathLike[str],
    desc: ModelDescriptor,
    tolerance: Tolerance,
    label: str,
    static: tuple[int, int] | None = None,
) -> Comparison:
    """Check ``derived`` (full ONNX check), compare it on ONNX Runtime with ``reference`` at the parity
    sizes, and write it atomically to ``output`` only if the gate passes (else :class:`ParityError`)."""
    check_model(derived, str(output))
    data = derived.SerializeToString()
    with OrtUpscaler(data, descriptor=desc) as candidate:
        inputs = parity_inputs(desc.scale, static or static_size(derived), sizes=parity_sizes(desc))
        report = run_compare(reference, candidate, inputs, tolerance, label)
    require(report, output)
    atomic_write_bytes(output, data)
    return report
