"""Accuracy budget for int8: per-layer sensitivity and greedy exclusion (``--max-psnr-drop``).

Quality is the mean Y-PSNR (dB, BT.601 luma, ``scale`` pixels shaved; :func:`sr_deploy.metrics.psnr`)
over a few validation crops: HR crops of real images with their MATLAB-bicubic LR (the standard
evaluation pair, cropped so one candidate costs a fraction of a second). The drop of a model is
``PSNR(fp32) - PSNR(candidate)``.

Sensitivity of a layer = the PSNR recovered when that layer alone is left in float and every other
quantizable layer is int8 (``drop(all int8) - drop(all but this layer)``). This measures what
excluding the layer buys in the model it will actually be excluded from (interactions with the
other quantized layers included), which is what the greedy search needs. Layers are then
excluded from quantization in decreasing order of sensitivity, the whole model being re-measured
after each exclusion, until the drop is within budget. All candidates reuse one calibration
(see :class:`sr_deploy.export.qdq.Quantizer`).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sr_deploy.data.datasets import EvalPair, collect_images, make_eval_pair
from sr_deploy.data.image_io import to_uint
from sr_deploy.export.errors import ExportError
from sr_deploy.export.parity import Runner, ort_runner
from sr_deploy.export.qdq import Quantizer
from sr_deploy.metrics import psnr

DEFAULT_VAL_CROP = 48
DEFAULT_VAL_CROPS_PER_IMAGE = 2


def validation_pairs(
    folder: str | os.PathLike[str] | None,
    scale: int,
    crops_per_image: int = DEFAULT_VAL_CROPS_PER_IMAGE,
    crop: int = DEFAULT_VAL_CROP,
    seed: int = 0,
) -> list[EvalPair]:
    """Aligned RGB crops (LR ``crop x crop``, HR ``scale`` times larger, uint8) of the standard
    evaluation pairs of the images in ``folder`` (default: the embedded evaluation photos)."""
    try:
        paths = collect_images([folder] if folder else None, split="eval")
    except (FileNotFoundError, ValueError) as exc:
        raise ExportError(f"validation images: {exc}") from None
    rng = np.random.default_rng(seed)
    pairs = []
    for path in paths:
        pair = make_eval_pair(path, scale)
        lr, hr = (np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in (pair.lr, pair.hr))
        c = min(crop, *lr.shape[:2])
        for i in range(crops_per_image):
            y, x = int(rng.integers(0, lr.shape[0] - c + 1)), int(rng.integers(0, lr.shape[1] - c + 1))
            pairs.append(
                EvalPair(
                    name=f"{pair.name}#{i}",
                    hr=np.ascontiguousarray(hr[y * scale : (y + c) * scale, x * scale : (x + c) * scale]),
                    lr=np.ascontiguousarray(lr[y : y + c, x : x + c]),
                )
            )
    return pairs


def mean_y_psnr(run: Runner, pairs: Sequence[EvalPair], scale: int) -> float:
    """Mean Y-PSNR (dB) of ``run`` over ``pairs`` (outputs clipped and rounded to uint8 first)."""
    scores = []
    for pair in pairs:
        lr = np.ascontiguousarray(pair.lr.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)
        sr = to_uint(run(lr)[0].transpose(1, 2, 0))
        scores.append(psnr(sr, pair.hr, crop_border=scale, test_y_channel=True))
    return float(np.mean(scores))


@dataclass
class BudgetReport:
    """The budgeted search: Y-PSNR (dB) of fp32 (``baseline_psnr``), of the all-int8 model, each
    layer's ``sensitivity`` (dB recovered by leaving it alone in float), the ``excluded`` layers
    (most sensitive first), the final model's PSNR and drop, and what the search cost."""

    budget_db: float
    baseline_psnr: float
    all_int8_psnr: float
    sensitivity: dict[str, float] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    final_psnr: float = math.nan
    evaluations: int = 0
    seconds: float = 0.0
    validation: dict[str, Any] = field(default_factory=dict)

    @property
    def all_int8_drop(self) -> float:
        return self.baseline_psnr - self.all_int8_psnr

    @property
    def final_drop(self) -> float:
        return self.baseline_psnr - self.final_psnr

    @property
    def within_budget(self) -> bool:
        return self.final_drop <= self.budget_db

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "all_int8_drop": self.all_int8_drop,
            "final_drop": self.final_drop,
            "within_budget": self.within_budget,
            "method": "leave-one-in-float sensitivity, greedy exclusion by decreasing sensitivity",
        }


def budgeted_exclusion(
    quantizer: Quantizer,
    candidates: Sequence[str],
    pairs: Sequence[EvalPair],
    scale: int,
    budget_db: float,
    on_step: Callable[[str], None] | None = None,
) -> BudgetReport:
    """Find layers to leave in float so the int8 model's Y-PSNR drop is at most ``budget_db``.

    Costs one quantize + evaluation for the all-int8 model, one per candidate (sensitivity; skipped
    when the all-int8 model is already within budget) and one per excluded layer.
    """
    if budget_db < 0:
        raise ExportError(f"--max-psnr-drop must be >= 0 dB, got {budget_db}")
    start = time.perf_counter()
    note = on_step or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="sr-deploy-budget.") as tmp:
        candidate_path = Path(tmp) / "candidate.onnx"

        def score(exclude: Sequence[str]) -> float:
            quantizer.quantize(exclude, candidate_path)
            report.evaluations += 1
            return mean_y_psnr(ort_runner(candidate_path), pairs, scale)

        baseline = mean_y_psnr(ort_runner(quantizer.model_path), pairs, scale)
        report = BudgetReport(budget_db, baseline, math.nan)
        report.validation = {"crops": len(pairs), "crop": int(pairs[0].lr.shape[0]) if pairs else 0}
        report.all_int8_psnr = report.final_psnr = score([])
        note(f"fp32 {baseline:.3f} dB, all int8 {report.all_int8_psnr:.3f} dB (drop {report.all_int8_drop:.3f})")
        if not report.within_budget:
            for i, node in enumerate(candidates):
                report.sensitivity[node] = score([node]) - report.all_int8_psnr
                note(f"sensitivity {i + 1}/{len(candidates)} {node}: {report.sensitivity[node]:+.3f} dB")
            ranked = sorted(candidates, key=lambda n: -report.sensitivity[n])
            while not report.within_budget and len(report.excluded) < len(ranked):
                report.excluded.append(ranked[len(report.excluded)])
                report.final_psnr = score(report.excluded)
                note(f"excluding {len(report.excluded)} layer(s): drop {report.final_drop:.3f} dB")
    report.seconds = time.perf_counter() - start
    return report
