"""Parity of a variant against the PyTorch fp32 reference on the same inputs (Polygraphy-style rules).

Errors are measured on raw float32 outputs (``N x 3 x sH x sW``, nominally [0, 1]; not clamped):
max-abs, mean-abs, 99th-percentile abs error and PSNR with peak 1.0 (the same number as on the
0..255 scale). A variant passes when its PSNR reaches the precision's floor and the chosen error
statistic of the Polygraphy excess ``|out - ref| - (atol + rtol * |ref|)`` is <= 0: every element
(``stat="max"``, fp32/fp16) or 99 % of them (``stat="p99"``, bf16/int8, whose rounding is coarse
enough that a few outliers are expected and harmless once the image is rounded to 8 bits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from sr_deploy.metrics import psnr


@dataclass(frozen=True)
class Tolerance:
    """Pass rule for one precision: ``atol`` / ``rtol`` (output units, [0, 1] scale), the error
    statistic they bind (``"max"`` or ``"p99"``) and the minimum PSNR in dB."""

    atol: float
    rtol: float
    min_psnr_db: float
    stat: str = "max"


#: Per-precision rules against torch fp32. fp32 must reach 100 dB (bit-level agreement up to
#: reassociation); fp16 keeps ~3 decimal digits; bf16 ~2; int8 is held to visual parity.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-4, min_psnr_db=100.0),
    "fp16": Tolerance(atol=5e-3, rtol=1e-2, min_psnr_db=50.0),
    "bf16": Tolerance(atol=2e-2, rtol=2e-2, min_psnr_db=35.0, stat="p99"),
    "int8": Tolerance(atol=3e-2, rtol=5e-2, min_psnr_db=30.0, stat="p99"),
}


@dataclass(frozen=True)
class ParityMetrics:
    """Error of one output against its reference. ``passed`` applies the precision's :class:`Tolerance`."""

    max_abs: float
    mean_abs: float
    p99_abs: float
    psnr_db: float
    finite: bool
    passed: bool
    atol: float
    rtol: float
    min_psnr_db: float
    stat: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def tolerance_for(precision: str) -> Tolerance:
    """The :class:`Tolerance` of ``precision`` (``fp32``, ``fp16``, ``bf16`` or ``int8``)."""
    try:
        return TOLERANCES[precision]
    except KeyError:
        raise ValueError(f"no parity tolerance for precision {precision!r}; known: {sorted(TOLERANCES)}") from None


def psnr_unit(out: np.ndarray, ref: np.ndarray) -> float:
    """PSNR in dB of ``out`` against ``ref`` with peak 1.0 (inf when equal): :func:`sr_deploy.metrics.psnr`
    on the 0..255 scale, which is the same number."""
    return psnr(out.astype(np.float64) * 255.0, ref.astype(np.float64) * 255.0)


def parity_metrics(out: np.ndarray, ref: np.ndarray, tol: Tolerance) -> ParityMetrics:
    """Compare ``out`` with ``ref`` (same shape, any float dtype) under ``tol``.

    Non-finite outputs fail and their errors are reported as inf.
    """
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from the reference {ref.shape}")
    o, r = out.astype(np.float64), ref.astype(np.float64)
    finite = bool(np.isfinite(o).all())
    if not finite:
        return ParityMetrics(math.inf, math.inf, math.inf, -math.inf, False, False,
                             tol.atol, tol.rtol, tol.min_psnr_db, tol.stat)
    err = np.abs(o - r)
    excess = err - (tol.atol + tol.rtol * np.abs(r))
    bound = float(excess.max()) if tol.stat == "max" else float(np.percentile(excess, 99.0))
    value = psnr_unit(o, r)
    return ParityMetrics(
        max_abs=float(err.max()),
        mean_abs=float(err.mean()),
        p99_abs=float(np.percentile(err, 99.0)),
        psnr_db=value,
        finite=True,
        passed=bound <= 0.0 and value >= tol.min_psnr_db,
        atol=tol.atol,
        rtol=tol.rtol,
        min_psnr_db=tol.min_psnr_db,
        stat=tol.stat,
    )


def combine(outs: Sequence[np.ndarray], refs: Sequence[np.ndarray], precision: str) -> ParityMetrics:
    """Parity over several input batches at once (all errors pooled), under ``precision``'s rule."""
    for o, r in zip(outs, refs, strict=True):
        if o.shape != r.shape:
            raise ValueError(f"output shape {o.shape} differs from the reference {r.shape}")
    flat_out = np.concatenate([np.asarray(o, dtype=np.float64).ravel() for o in outs])
    flat_ref = np.concatenate([np.asarray(r, dtype=np.float64).ravel() for r in refs])
    return parity_metrics(flat_out, flat_ref, tolerance_for(precision))
