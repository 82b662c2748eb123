"""Parity gate: an exported model must reproduce its reference on real images before it is written.

Inputs are real photos (the embedded evaluation images), turned into LR with MATLAB bicubic and
cropped at two different sizes (one of them a batch of two), so a graph that only works at the
export size or batch 1 fails here. Errors are measured on the raw float32 outputs (``N x 3 x sH x
sW``, nominally [0, 1]): PSNR with peak 1.0 (the same number as on the 0..255 scale) and max-abs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sr_deploy.data.datasets import embedded_images, make_eval_pair
from sr_deploy.data.image_io import to_float_rgb
from sr_deploy.data.imresize import imresize
from sr_deploy.export.errors import ParityError
from sr_deploy.metrics import psnr
from sr_deploy.models.descriptor import ModelDescriptor

if TYPE_CHECKING:
    import onnx

Runner = Callable[[np.ndarray], np.ndarray]
DYNAMIC_SIZES = ((1, 40, 56), (2, 27, 33))


def lr_crops(
    paths: Sequence[str | os.PathLike[str]], scale: int, batch: int, height: int, width: int, seed: int
) -> np.ndarray:
    """``batch x 3 x height x width`` float32 crops in [0, 1] of the MATLAB-bicubic LR of ``paths``
    (image ``i`` of the batch comes from ``paths[i % len(paths)]``; LR images smaller than the
    crop are first enlarged with bicubic ``imresize``)."""
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(batch):
        lr = to_float_rgb(make_eval_pair(paths[i % len(paths)], scale).lr)
        if lr.shape[0] < height or lr.shape[1] < width:
            lr = imresize(lr, output_shape=(max(height, lr.shape[0]), max(width, lr.shape[1])))
        y = int(rng.integers(0, lr.shape[0] - height + 1))
        x = int(rng.integers(0, lr.shape[1] - width + 1))
        crops.append(lr[y : y + height, x : x + width].transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(crops), dtype=np.float32)


def parity_inputs(desc: ModelDescriptor, static: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Two input batches of real LR crops: ``1 x 3 x 40 x 56`` and ``2 x 3 x 27 x 33`` (or, for a
    static ``(H, W)`` model, ``1 x 3 x H x W`` and ``2 x 3 x H x W`` from other images)."""
    paths = embedded_images("eval")
    sizes = [(n, *static) for n, _, _ in DYNAMIC_SIZES] if static else list(DYNAMIC_SIZES)
    return [lr_crops(paths[i:] + paths[:i], desc.scale, n, h, w, seed=i) for i, (n, h, w) in enumerate(sizes)]


@dataclass(frozen=True)
class ParityReport:
    """Per-batch agreement of ``candidate`` with ``reference`` and the gate it was held to.

    ``rows``: one dict per batch: ``shape`` (input NCHW), ``psnr_db`` (peak 1.0; inf when equal),
    ``max_abs``. ``passed``: every batch has ``psnr_db >= min_psnr_db`` and ``max_abs <= max_abs``.
    """

    label: str
    min_psnr_db: float
    max_abs: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(
            r["finite"]
            and r["psnr_db"] >= self.min_psnr_db
            and (self.max_abs is None or r["max_abs"] <= self.max_abs)
            for r in self.rows
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["rows"] = [
            {**r, "psnr_db": r["psnr_db"] if math.isfinite(r["psnr_db"]) else None} for r in self.rows
        ]
        return d

    def summary(self) -> str:
        gate = f"PSNR >= {self.min_psnr_db:g} dB" + (f", max-abs <= {self.max_abs:g}" if self.max_abs else "")
        parts = [
            f"{'x'.join(map(str, r['shape']))}: PSNR {r['psnr_db']:.2f} dB, max-abs {r['max_abs']:.3g}"
            + ("" if r["finite"] else " (non-finite outputs)")
            for r in self.rows
        ]
        return f"{self.label} ({gate}): " + "; ".join(parts)


def compare(
    reference: Runner,
    candidate: Runner,
    inputs: Sequence[np.ndarray],
    min_psnr_db: float,
    max_abs: float | None,
    label: str,
) -> ParityReport:
    """Run both on every input batch and measure the candidate's error against the reference."""
    rows = []
    for batch in inputs:
        ref = np.asarray(reference(batch), dtype=np.float64)
        out = np.asarray(candidate(batch), dtype=np.float64)
        if ref.shape != out.shape:
            raise ParityError(
                f"{label}: output shape {out.shape} differs from the reference {ref.shape} "
                f"for input {batch.shape}",
                None,
            )
        finite = bool(np.isfinite(out).all())
        diff = np.abs(np.nan_to_num(out, nan=1e9, posinf=1e9, neginf=-1e9) - ref)
        flat = (out.reshape(-1, out.shape[-1]), ref.reshape(-1, ref.shape[-1]))
        rows.append(
            {
                "shape": list(batch.shape),
                "psnr_db": psnr(flat[0] * 255.0, flat[1] * 255.0) if finite else -math.inf,
                "max_abs": float(diff.max()),
                "finite": finite,
            }
        )
    return ParityReport(label, min_psnr_db, max_abs, rows)


def require(report: ParityReport, destination: str | os.PathLike[str]) -> None:
    """Raise :class:`ParityError` (nothing has been written to ``destination``) unless ``report`` passed."""
    if not report.passed:
        raise ParityError(f"parity gate failed, {destination} not written: {report.summary()}", report)


def gate_and_write(
    reference: onnx.ModelProto,
    derived: onnx.ModelProto,
    output: str | os.PathLike[str],
    desc: ModelDescriptor,
    min_psnr_db: float,
    max_abs: float | None,
    label: str,
) -> ParityReport:
    """Check ``derived`` (full ONNX check), compare it with ``reference`` on ONNX Runtime at the parity
    sizes, and write it atomically to ``output`` only if the gate passes (else :class:`ParityError`)."""
    from sr_deploy.artifacts import atomic_write_bytes
    from sr_deploy.export.metadata import static_size
    from sr_deploy.export.onnx import check_model

    check_model(derived, str(output))
    data = derived.SerializeToString()
    report = compare(ort_runner(reference.SerializeToString()), ort_runner(data),
                     parity_inputs(desc, static_size(reference)), min_psnr_db, max_abs, label)
    require(report, output)
    atomic_write_bytes(output, data)
    return report


def ort_runner(model: bytes | str | os.PathLike[str], threads: int = 0) -> Runner:
    """An ONNX Runtime CPU session over ``model`` (serialized bytes or a path) as a batch function."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch})[0], dtype=np.float32)

    return run
