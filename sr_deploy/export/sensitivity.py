"""Accuracy budget for int8: per-layer sensitivity and exclusion (``--max-psnr-drop``).

Quality is the mean Y-PSNR (dB, BT.601 luma, ``scale`` pixels shaved; :func:`sr_deploy.metrics.psnr`)
over validation crops: HR crops of real images with their MATLAB-bicubic LR (the standard
evaluation pair, cropped so one candidate costs a fraction of a second). The drop of a model is
``PSNR(fp32) - PSNR(candidate)``, both on outputs rounded to 8 bits as a saved image would be.

Sensitivity of a layer = the error it adds when it alone is int8 and every other layer is float:
the mean squared difference (Y channel, 0..255 scale, unrounded) between that model's output and
the fp32 output, and the PSNR drop it predicts alone. Quantization errors of different layers are
close to independent, so their powers add: the error against ground truth of a model with the
layer set ``S`` in int8 is about ``MSE(fp32, HR) + sum(noise_i for i in S)``, which predicts its
drop ``10 log10(1 + sum(noise_i) / MSE(fp32, HR))``. What int8 buys is speed, in proportion to
the work a layer does (multiply-accumulates for a Conv, elements for an Add, per LR pixel), so
layers are ranked by error per unit of work: they are quantized from the cheapest error per
multiply-accumulate up while the prediction holds the budget (the most sensitive per unit of
work are left in float); then the real drop of that model is measured and the cut moved (binary
search over the number of int8 layers, each step measured) to the largest int8 set found within
budget. Measuring layers alone
(rather than leaving one in float in an otherwise int8 model) gives each layer's own share of the
error without the others' noise on top, which is what ranks 50 small contributions reliably. All
candidates reuse one calibration (see :class:`sr_deploy.export.qdq.Quantizer`).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from sr_deploy.backends.base import Upscaler
from sr_deploy.backends.onnxrt import OrtUpscaler
from sr_deploy.backends.openvino import OvUpscaler
from sr_deploy.data.datasets import EvalPair, collect_images, crop_pair, make_eval_pair
from sr_deploy.errors import ExportError
from sr_deploy.export.qdq import Quantizer
from sr_deploy.models.descriptor import ModelDescriptor
from sr_deploy.scoring import mean_y_mse, mean_y_psnr, upscale_pair

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
        rgb = EvalPair(pair.name, *(np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in (pair.hr, pair.lr)))
        c = min(crop, *rgb.lr.shape[:2])
        for i in range(crops_per_image):
            y, x = int(rng.integers(0, rgb.lr.shape[0] - c + 1)), int(rng.integers(0, rgb.lr.shape[1] - c + 1))
            pairs.append(crop_pair(rgb, y, x, c, scale, name=f"{pair.name}#{i}"))
    return pairs


#: The CPU engines an int8 candidate can be measured on (``measure_on``): the budget holds for the engine
#: that will run the file, since int8 arithmetic differs between them (and between CPU classes).
MEASURE_ON = ("onnxruntime", "openvino")


def outputs_of(
    model: str | os.PathLike[str], desc: ModelDescriptor, pairs: Sequence[EvalPair], measure_on: str = "onnxruntime"
) -> list[np.ndarray]:
    """The ONNX ``model`` on each pair (:func:`~sr_deploy.scoring.upscale_pair` outputs), run by ONNX Runtime
    CPU or by OpenVINO CPU (``measure_on``; the file's own precision, fp32 compute for float layers)."""
    if measure_on not in MEASURE_ON:
        raise ExportError(f"measure_on must be one of {MEASURE_ON}, got {measure_on!r}")
    up: Upscaler = (OrtUpscaler(model, descriptor=desc) if measure_on == "onnxruntime"
                    else OvUpscaler(model, descriptor=desc))
    with up:
        return [upscale_pair(up, p) for p in pairs]


def drop_for_noise(noise: float, baseline_psnr: float) -> float:
    """Predicted Y-PSNR drop (dB) when error power ``noise`` (Y, 0..255 scale) adds to a model at
    ``baseline_psnr`` dB against ground truth: ``10 log10(1 + noise / MSE(baseline))``."""
    return 10.0 * math.log10(1.0 + noise / (255.0**2 / 10.0 ** (baseline_psnr / 10.0)))


@dataclass
class BudgetReport:
    """The budgeted search: Y-PSNR (dB) of fp32 (``baseline_psnr``) and of the all-int8 model, each
    layer's error alone (``noise``: Y MSE on the 0..255 scale against fp32; ``sensitivity``: the
    drop in dB it predicts alone), its ``work`` (multiply-accumulates or elements per LR pixel),
    the ``excluded`` layers (most error per unit of work first), the ``predicted``
    and measured final drop, every measured cut (``cuts``: int8 layer count -> drop in dB), the
    ``fusion_groups`` kept int8 (candidate -> the nodes that run int8 with it: for the ``tensorrt``
    layout a Conv, its fused activation and the residual Add fused into it; a candidate is excluded
    with its whole group, so no neighbour's fusion is split), and what the search cost."""

    budget_db: float
    baseline_psnr: float
    all_int8_psnr: float
    noise: dict[str, float] = field(default_factory=dict)
    work: dict[str, float] = field(default_factory=dict)
    sensitivity: dict[str, float] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    predicted_drop: float = math.nan
    final_psnr: float = math.nan
    cuts: dict[int, float] = field(default_factory=dict)
    fusion_groups: dict[str, list[str]] = field(default_factory=dict)
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
            "method": "quantize-one-alone error power per unit of work; the most sensitive per unit of work "
            "left in float, cut found by measured binary search from the additive-noise prediction",
        }


def node_work(model: onnx.ModelProto, side: int = 16) -> dict[str, float]:
    """Work per LR input pixel of every Conv (multiply-accumulates) and Add (elements) in an
    image-to-image ``N x C x H x W`` model, from ONNX shape inference at ``1 x C x side x side``."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, dims[1].dim_value, side, side), strict=True):
        dim.Clear()
        dim.dim_value = value
    inferred = onnx.shape_inference.infer_shapes(fixed)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    shapes.update({v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.output})
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    work = {}
    for node in model.graph.node:
        out = shapes.get(node.output[0])
        if node.op_type not in ("Conv", "Add") or not out or not all(out):
            continue
        per_output = math.prod(weights[node.input[1]][1:]) if node.op_type == "Conv" else 1
        work[node.name] = math.prod(out) * per_output / side**2
    return work


@dataclass
class Cut:
    """What :func:`measured_cut` found: each candidate's error alone in low precision (``noise``: Y MSE on
    the 0..255 scale against the reference; ``sensitivity``: the drop in dB it predicts alone), the drop
    ``predicted`` for the first cut probed, every measured cut (``cuts``: low-precision candidate count ->
    drop in dB), the candidates ``left_out`` of low precision (most error per unit of cost first) and the
    Y-PSNR (dB) of the chosen model (``final_psnr``)."""

    noise: dict[str, float]
    sensitivity: dict[str, float]
    predicted_drop: float
    cuts: dict[int, float]
    left_out: list[str]
    final_psnr: float


def measured_cut(
    candidates: Sequence[str],
    outputs: Callable[[Sequence[str]], list[np.ndarray]],
    reference: Sequence[np.ndarray],
    pairs: Sequence[EvalPair],
    scale: int,
    budget_db: float,
    what: str,
    note: Callable[[str], None],
    cost: Mapping[str, float] | None = None,
) -> Cut:
    """The search both accuracy budgets share (int8 here, fp16 in :mod:`.fp16_search`): the most
    ``candidates`` in low precision whose measured Y-PSNR drop on ``pairs`` is at most ``budget_db``.

    ``outputs(left_out)``: the model's outputs on ``pairs`` with every candidate in low precision but
    ``left_out``; ``reference``: the full-precision outputs. Each candidate's error alone in low
    precision is measured (one call each), candidates are ranked by error per unit of ``cost`` (default
    1: by error), the additive-noise prediction (:func:`drop_for_noise`) gives the first cut, and a
    binary search over the number in low precision, each probe measured, moves it to the largest
    within budget (about log2(len(candidates)) calls). The caller has measured all of them in low
    precision (over budget) first: that count is not probed. ``what`` names the step in the notes
    (e.g. ``"layers int8"``)."""
    baseline = mean_y_psnr(reference, pairs, scale)
    noise: dict[str, float] = {}
    sensitivity: dict[str, float] = {}
    for i, node in enumerate(candidates):
        alone = outputs([c for c in candidates if c != node])
        noise[node] = mean_y_mse(alone, reference, scale)
        sensitivity[node] = drop_for_noise(noise[node], baseline)
        note(f"sensitivity {i + 1}/{len(candidates)} {node}: {sensitivity[node]:.3g} dB alone")
    order = sorted(candidates, key=lambda n: noise[n] / (cost[n] if cost else 1.0))  # least error per cost first
    predicted = [drop_for_noise(total, baseline) for total in accumulate(noise[n] for n in order)]
    guess = sum(drop <= budget_db for drop in predicted)  # predicted drops grow with k
    # largest k (in low precision, least error per cost first) whose measured drop is within budget, by binary
    # search whose first probe is the prediction; k = 0 is the full-precision model itself (drop 0), k =
    # len(order) is already measured over budget
    cuts: dict[int, float] = {}
    lo, hi, best = 0, len(order), baseline
    probe = min(max(guess, 1), len(order) - 1)
    while hi - lo > 1:
        psnr_k = mean_y_psnr(outputs(order[probe:]), pairs, scale)
        cuts[probe] = baseline - psnr_k
        note(f"{probe} of {len(order)} {what}: drop {cuts[probe]:.4f} dB")
        lo, hi, best = (probe, hi, psnr_k) if cuts[probe] <= budget_db else (lo, probe, best)
        probe = (lo + hi) // 2
    return Cut(noise, sensitivity, predicted[guess - 1] if guess else 0.0, cuts, order[lo:][::-1], best)


def budgeted_exclusion(
    quantizer: Quantizer,
    candidates: Sequence[str],
    pairs: Sequence[EvalPair],
    desc: ModelDescriptor,
    budget_db: float,
    on_step: Callable[[str], None] | None = None,
    measure_on: str = "onnxruntime",
) -> BudgetReport:
    """Find layers to leave in float so the int8 model's Y-PSNR drop is at most ``budget_db``,
    keeping as many layers int8 as the measurements allow; every candidate is run by ``measure_on``
    (:data:`MEASURE_ON`). ``candidates`` are :func:`~sr_deploy.export.qdq.quantizable_nodes` (the Convs heading
    TensorRT's fusion groups in the ``tensorrt`` layout, Convs and Adds in ``ort-cpu``).

    Costs one quantize + evaluation for the all-int8 model, one per candidate (sensitivity; skipped
    when the all-int8 model is already within budget) and about log2(len(candidates)) for the cut.
    """
    if budget_db < 0:
        raise ExportError(f"max_psnr_drop must be >= 0 dB, got {budget_db}")
    scale = desc.scale
    start = time.perf_counter()
    note = on_step or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="sr-deploy-budget.") as tmp:
        candidate_path = Path(tmp) / "candidate.onnx"

        def outputs(exclude: Sequence[str]) -> list[np.ndarray]:
            quantizer.quantize(exclude, candidate_path)
            report.evaluations += 1
            return outputs_of(candidate_path, desc, pairs, measure_on)

        reference = outputs_of(quantizer.model_path, desc, pairs, measure_on)
        baseline = mean_y_psnr(reference, pairs, scale)
        report = BudgetReport(budget_db, baseline, math.nan)
        report.validation = {"crops": len(pairs), "crop": int(pairs[0].lr.shape[0]) if pairs else 0,
                             "measured_on": measure_on}
        report.all_int8_psnr = report.final_psnr = mean_y_psnr(outputs([]), pairs, scale)
        report.cuts[len(candidates)] = report.all_int8_drop
        note(f"fp32 {baseline:.3f} dB, all int8 {report.all_int8_psnr:.3f} dB (drop {report.all_int8_drop:.3f})")
        if report.within_budget:
            report.fusion_groups = quantizer.groups([])
            report.seconds = time.perf_counter() - start
            return report
        work = node_work(quantizer.model)
        report.work = {n: work[n] for n in candidates}
        cut = measured_cut(candidates, outputs, reference, pairs, scale, budget_db, "layers int8", note, report.work)
        report.noise, report.sensitivity, report.predicted_drop = cut.noise, cut.sensitivity, cut.predicted_drop
        report.cuts.update(cut.cuts)
        report.excluded = cut.left_out
        report.fusion_groups = quantizer.groups(report.excluded)
        report.final_psnr = cut.final_psnr
    report.seconds = time.perf_counter() - start
    return report
