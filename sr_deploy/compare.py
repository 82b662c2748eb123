"""The one comparator: how far outputs are from a reference, and whether that is within a tolerance.

Used by the export gate (a derived ONNX against its source), the bench (every variant against
torch fp32) and the GPU check. Errors are measured on raw float32 outputs (``N x 3 x sH x sW``,
nominally [0, 1]; not clamped): per output batch the PSNR (peak 1.0: the same number as on the
0..255 scale) and max-abs; pooled over all batches the max-abs, mean-abs, 99th-percentile abs
error and PSNR. A comparison passes when every output is finite, every batch reaches the PSNR
floor, and the chosen statistic of the Polygraphy excess ``|out - ref| - (atol + rtol * |ref|)`` is
<= 0: every element (``stat="max"``) or 99 % of them (``stat="p99"``, for bf16/int8, whose rounding
is coarse enough that a few outliers are expected and harmless once the image is rounded to 8
bits). A tolerance without ``atol`` has no element-wise bound (the PSNR floor alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sr_deploy.metrics import psnr

STATS = ("max", "p99")


@dataclass(frozen=True)
class Tolerance:
    """A pass rule: the PSNR floor in dB (every batch), and optionally an element-wise bound ``atol`` /
    ``rtol`` (output units, [0, 1] scale) on the error statistic ``stat`` (``"max"`` or ``"p99"``)."""

    min_psnr_db: float = -math.inf
    atol: float | None = None
    rtol: float = 0.0
    stat: str = "max"

    def __post_init__(self) -> None:
        if self.stat not in STATS:
            raise ValueError(f"tolerance statistic must be one of {STATS}, got {self.stat!r}")

    def describe(self) -> str:
        """``PSNR >= 100 dB, max-abs <= 0.0001`` style text."""
        parts = [f"PSNR >= {self.min_psnr_db:g} dB"] if math.isfinite(self.min_psnr_db) else []
        if self.atol is not None:
            bound = f"{self.atol:g}" + (f" + {self.rtol:g} |ref|" if self.rtol else "")
            parts.append(f"{'max' if self.stat == 'max' else 'p99'}-abs <= {bound}")
        return ", ".join(parts) or "finite outputs"


#: Per-precision rules against torch fp32. fp32 must reach 100 dB (bit-level agreement up to
#: reassociation); fp16 keeps ~3 decimal digits; bf16 ~2; int8 is held to visual parity.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(min_psnr_db=100.0, atol=1e-4, rtol=1e-4),
    "fp16": Tolerance(min_psnr_db=50.0, atol=5e-3, rtol=1e-2),
    "bf16": Tolerance(min_psnr_db=35.0, atol=2e-2, rtol=2e-2, stat="p99"),
    "int8": Tolerance(min_psnr_db=30.0, atol=3e-2, rtol=5e-2, stat="p99"),
}


def tolerance_for(precision: str) -> Tolerance:
    """The :class:`Tolerance` of ``precision`` (``fp32``, ``fp16``, ``bf16`` or ``int8``) against torch fp32."""
    try:
        return TOLERANCES[precision]
    except KeyError:
        raise ValueError(f"no parity tolerance for precision {precision!r}; known: {sorted(TOLERANCES)}") from None


def psnr_unit(out: np.ndarray, ref: np.ndarray) -> float:
    """PSNR in dB of ``out`` against ``ref`` with peak 1.0 (inf when equal): :func:`sr_deploy.metrics.psnr`
    on the 0..255 scale, which is the same number."""
    return psnr(np.asarray(out, dtype=np.float64) * 255.0, np.asarray(ref, dtype=np.float64) * 255.0)


@dataclass(frozen=True)
class Comparison:
    """The errors of a set of outputs against their references and the verdict under ``tolerance``.

    ``rows``: one dict per batch: ``shape`` (the batch's input NCHW where given, else its output),
    ``psnr_db`` (peak 1.0; inf when equal), ``max_abs``, ``finite``. The pooled statistics cover
    every element of every batch (inf, and PSNR -inf, when any output is not finite).
    """

    label: str
    tolerance: Tolerance
    rows: list[dict[str, Any]]
    max_abs: float
    mean_abs: float
    p99_abs: float
    psnr_db: float
    finite: bool
    bound: float = field(repr=False)

    @property
    def passed(self) -> bool:
        return (self.finite and self.bound <= 0.0
                and all(r["psnr_db"] >= self.tolerance.min_psnr_db for r in self.rows))

    @property
    def min_psnr_db(self) -> float:
        """The PSNR floor of the tolerance."""
        return self.tolerance.min_psnr_db

    def metrics(self) -> dict[str, Any]:
        """The pooled numbers and the rule as one flat row (a bench parity table row)."""
        t = self.tolerance
        return {"max_abs": self.max_abs, "mean_abs": self.mean_abs, "p99_abs": self.p99_abs,
                "psnr_db": self.psnr_db, "finite": self.finite, "passed": self.passed,
                "atol": t.atol, "rtol": t.rtol, "min_psnr_db": t.min_psnr_db, "stat": t.stat}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers as None): label, rule, pooled metrics and per-batch rows."""
        def finite(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {"label": self.label, "tolerance": self.tolerance.describe(),
                **{k: finite(v) for k, v in self.metrics().items()},
                "rows": [{k: finite(v) for k, v in r.items()} for r in self.rows]}

    def summary(self) -> str:
        parts = [
            f"{'x'.join(map(str, r['shape']))}: PSNR {r['psnr_db']:.2f} dB, max-abs {r['max_abs']:.3g}"
            + ("" if r["finite"] else " (non-finite outputs)")
            for r in self.rows
        ]
        return f"{self.label} ({self.tolerance.describe()}): " + "; ".join(parts)


def compare(
    outputs: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    tolerance: Tolerance,
    label: str = "",
    input_shapes: Sequence[tuple[int, ...]] | None = None,
) -> Comparison:
    """Compare each output batch with its reference batch (same shapes, any float dtype) under ``tolerance``.

    ``input_shapes``: the NCHW inputs the batches came from, recorded in the rows (default: the
    output shapes). Raises ValueError when an output's shape differs from its reference's.
    """
    if len(outputs) != len(reference) or not outputs:
        raise ValueError(f"{label or 'compare'}: need one reference per output batch "
                         f"(got {len(outputs)} outputs, {len(reference)} references)")
    shapes = list(input_shapes) if input_shapes is not None else [tuple(o.shape) for o in outputs]
    rows, errs, refs = [], [], []
    finite = True
    for out, ref, shape in zip(outputs, reference, shapes, strict=True):
        o, r = np.asarray(out, dtype=np.float64), np.asarray(ref, dtype=np.float64)
        if o.shape != r.shape:
            raise ValueError(f"{label + ': ' if label else ''}output shape {o.shape} differs from the reference "
                             f"{r.shape} for input {tuple(shape)}")
        ok = bool(np.isfinite(o).all())
        err = np.abs(np.nan_to_num(o, nan=1e9, posinf=1e9, neginf=-1e9) - r)
        rows.append({"shape": list(shape), "psnr_db": psnr_unit(o, r) if ok else -math.inf,
                     "max_abs": float(err.max()) if ok else math.inf, "finite": ok})
        finite &= ok
        errs.append(err.ravel())
        refs.append(np.abs(r).ravel())
    if not finite:
        return Comparison(label, tolerance, rows, math.inf, math.inf, math.inf, -math.inf, False, math.inf)
    err, mag = np.concatenate(errs), np.concatenate(refs)
    bound = -math.inf
    if tolerance.atol is not None:
        excess = err - (tolerance.atol + tolerance.rtol * mag)
        bound = float(excess.max()) if tolerance.stat == "max" else float(np.percentile(excess, 99.0))
    mse = float(np.mean(err**2))
    pooled = math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
    return Comparison(label, tolerance, rows, float(err.max()), float(err.mean()), float(np.percentile(err, 99.0)),
                      pooled, True, bound)
