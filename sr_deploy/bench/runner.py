"""``sr-deploy bench``: parity, accuracy and latency of every variant, saved as a results folder.

Order of work: environment -> open the variants -> parity against torch fp32 on real LR crops
(with layer localisation for an ONNX variant that fails) -> accuracy against HR ground truth per
dataset -> side-by-side crops -> latency per input shape -> tables + report (see
:mod:`sr_deploy.bench.results` for the folder layout).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sr_deploy.bench.accuracy import evaluate, super_resolve_pair
from sr_deploy.bench.config import BenchConfig
from sr_deploy.bench.divergence import localize_divergence
from sr_deploy.bench.environment import environment, machine_slug
from sr_deploy.bench.latency import LatencyStats, measure
from sr_deploy.bench.parity import ParityMetrics, combine, tolerance_for
from sr_deploy.bench.results import save_json, save_table
from sr_deploy.bench.variants import REFERENCE, Variant, open_variants, unique_names
from sr_deploy.data.datasets import EvalPair, collect_images, make_eval_pair
from sr_deploy.data.image_io import write_image
from sr_deploy.export.parity import lr_crops

#: Parity batches (N, H, W) in LR pixels: two sizes, one of them a batch of two.
PARITY_SHAPES = ((1, 48, 64), (2, 32, 40))
#: Side-by-side crop: LR side in pixels (the HR crop is ``scale`` times larger).
CROP_LR = 40

Log = Callable[[str], None]


def dataset_name(folder: str) -> str:
    """``.../Set5/HR`` -> ``Set5``; ``.../T91`` -> ``T91``."""
    p = Path(folder).resolve()
    return p.parent.name if p.name.lower() in ("hr", "gt") else p.name


def datasets(config: BenchConfig) -> dict[str, list[Path]]:
    """Dataset name -> image paths (at most ``config.max_images`` each); ``embedded`` by default."""
    if not config.data:
        return {"embedded": collect_images(None, split="eval")[: config.max_images]}
    return {dataset_name(f): collect_images([f])[: config.max_images] for f in config.data}


def _parity_row(v: Variant, metrics: ParityMetrics | None, status: str, divergence: Any = None) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": v.name, "backend": v.backend, "precision": v.precision, "status": status}
    if metrics is not None:
        row.update(metrics.to_dict())
        first = None if divergence is None else divergence.first
        row["diverging_layer"] = None if first is None else first.torch_module
        row["divergence"] = None if divergence is None else divergence.summary()
    return row


def run_parity(variants: list[Variant], inputs: list[np.ndarray], weights: Path, log: Log) -> pl.DataFrame:
    """One row per variant: its errors against the reference on ``inputs``, pass/fail, and for a
    failing ONNX variant the first diverging layer."""
    from sr_deploy.models.weights import load_weights

    ref = variants[0].upscaler
    assert ref is not None
    refs = [ref.run(b) for b in inputs]
    rows = []
    for v in variants:
        if not v.available:
            rows.append(_parity_row(v, None, v.label))
            continue
        up = v.upscaler
        assert up is not None
        if not all(up.accepts(tuple(b.shape)) for b in inputs):
            rows.append(_parity_row(v, None, "not available: parity inputs outside the accepted shapes"))
            continue
        metrics = combine([up.run(b) for b in inputs], refs, v.precision)
        divergence = None
        if not metrics.passed and v.backend == "onnxruntime":
            net, _ = load_weights(weights)
            divergence = localize_divergence(v.source, net, inputs[0], v.precision)
            log(f"{v.name} fails parity: {divergence.summary()}")
        rows.append(_parity_row(v, metrics, "ok", divergence))
    return pl.DataFrame(rows, infer_schema_length=None, schema_overrides={
        "diverging_layer": pl.String, "divergence": pl.String, "psnr_db": pl.Float64, "max_abs": pl.Float64,
        "mean_abs": pl.Float64, "p99_abs": pl.Float64, "passed": pl.Boolean})


def run_accuracy(variants: list[Variant], sets: dict[str, list[Path]], scale: int, log: Log) -> pl.DataFrame:
    """Y-PSNR/SSIM per (variant, dataset, image) for the bicubic baseline and every available variant."""
    from sr_deploy.runtime import load

    rows: list[dict[str, Any]] = []
    bicubic = Variant("bicubic", "bicubic", "fp64", "", upscaler=load("bicubic", scale=scale))
    for v in [bicubic, *variants]:
        for name, images in sets.items():
            if not v.available:
                rows.append({"variant": v.name, "precision": v.precision, "dataset": name, "status": v.label})
                continue
            assert v.upscaler is not None
            try:
                df = evaluate(v.upscaler, images)
            except ValueError as exc:  # e.g. an engine whose profile does not cover the image size
                rows.append({"variant": v.name, "precision": v.precision, "dataset": name,
                             "status": f"not available: {exc}"})
                continue
            log(f"accuracy {v.name} on {name}: {float(df['psnr_y'].mean()):.3f} dB")  # type: ignore[arg-type]
            rows.extend({"variant": v.name, "precision": v.precision, "dataset": name, "status": "ok", **r}
                        for r in df.to_dicts())
    return pl.DataFrame(rows, infer_schema_length=None,
                        schema_overrides={"name": pl.String, "psnr_y": pl.Float64, "ssim_y": pl.Float64})


def _crop_pair(path: Path, scale: int) -> EvalPair:
    """A ``CROP_LR``-pixel LR crop (and its HR crop) from the middle of an evaluation image."""
    pair = make_eval_pair(path, scale)
    c = min(CROP_LR, *pair.lr.shape[:2])
    y, x = (pair.lr.shape[0] - c) // 2, (pair.lr.shape[1] - c) // 2
    hr = pair.hr[y * scale:(y + c) * scale, x * scale:(x + c) * scale]
    return EvalPair(pair.name, hr=hr, lr=pair.lr[y:y + c, x:x + c])


def save_crops(variants: list[Variant], image: Path, scale: int, folder: Path) -> None:
    """``crops/{hr,bicubic,fp32,fp16,int8}.png``: the same region, ground truth and each precision's
    output (the ONNX Runtime variant of a precision when there is one, else the first available)."""
    from sr_deploy.runtime import load

    pair = _crop_pair(image, scale)
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / "hr.png", pair.hr)
    write_image(folder / "bicubic.png", super_resolve_pair(load("bicubic", scale=scale), pair))
    for precision in ("fp32", "fp16", "int8"):
        ok = [v for v in variants if v.available and v.precision == precision]
        ok.sort(key=lambda v: (v.name != REFERENCE if precision == "fp32" else v.backend != "onnxruntime"))
        if ok and ok[0].upscaler is not None and ok[0].upscaler.accepts((1, 3, *pair.lr.shape[:2])):
            write_image(folder / f"{precision}.png", super_resolve_pair(ok[0].upscaler, pair))


def _latency_row(v: Variant, shape: tuple[int, int, int], stats: LatencyStats | None, status: str) -> dict[str, Any]:
    n, h, w = shape
    row: dict[str, Any] = {"variant": v.name, "backend": v.backend, "precision": v.precision,
                           "batch": n, "height": h, "width": w, "status": status}
    if stats is not None:
        row.update(stats.to_dict())
    return row


def run_latency(variants: list[Variant], config: BenchConfig, log: Log) -> pl.DataFrame:
    """One row per (variant, batch, H, W): warm stats, or the reason it was not measured."""
    rng = np.random.default_rng(0)
    rows = []
    for v in variants:
        for shape in config.shapes():
            n, h, w = shape
            if not v.available:
                rows.append(_latency_row(v, shape, None, v.label))
                continue
            assert v.upscaler is not None
            if not v.upscaler.accepts((n, 3, h, w)):
                rows.append(_latency_row(v, shape, None, f"not available: {n}x3x{h}x{w} outside the accepted shapes"))
                continue
            batch = rng.random((n, 3, h, w), dtype=np.float32)
            stats = measure(v.upscaler, batch, config.warmup, config.repeats, config.max_spread,
                            config.max_attempts, config.budget_s)
            log(f"latency {v.name} {n}x{h}x{w}: p50 {stats.p50_ms:.1f} ms ({stats.mp_per_s:.2f} MP/s)")
            rows.append(_latency_row(v, shape, stats, "ok"))
    floats = ("first_call_ms", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms", "mp_per_s",
              "images_per_s", "spread", "peak_rss_mb", "gpu_mem_mb")
    return pl.DataFrame(rows, infer_schema_length=None,
                        schema_overrides={**{k: pl.Float64 for k in floats}, "repeats": pl.Int64,
                                          "attempts": pl.Int64, "stable": pl.Boolean})


def run_bench(config: BenchConfig, out: str | os.PathLike[str], log: Log = print) -> Path:
    """Measure every variant of ``config`` and write the results folder ``out`` plus its report.

    ``{machine}`` in ``out`` is replaced by :func:`~sr_deploy.bench.environment.machine_slug`.
    Returns the path of ``report.md``. Raises ValueError / FileNotFoundError for bad inputs (the
    reference model, data folders); variants that cannot run are recorded, not raised.
    """
    from sr_deploy.bench.report import write_report

    start = time.perf_counter()
    env = environment(config.ort_threads)
    folder = Path(str(out).replace("{machine}", machine_slug(env)))
    folder.mkdir(parents=True, exist_ok=True)
    sets = datasets(config)
    variants = open_variants(config)
    unique_names(variants)
    for v in variants:
        log(f"{v.name}: {v.label}")
    ref = variants[0].upscaler
    assert ref is not None
    first_images = next(iter(sets.values()))
    inputs = [lr_crops(first_images[i:] + first_images[:i], ref.scale, n, h, w, seed=i)
              for i, (n, h, w) in enumerate(PARITY_SHAPES)]
    for v in variants:
        if v.available:
            tolerance_for(v.precision)  # fails early on a precision without a rule
    parity = run_parity(variants, inputs, Path(variants[0].source), log)
    accuracy = run_accuracy(variants, sets, ref.scale, log)
    save_crops(variants, first_images[0], ref.scale, folder / "crops")
    latency = run_latency(variants, config, log)
    save_table(pl.DataFrame([v.row() for v in variants], infer_schema_length=None,
                            schema_overrides={"load_s": pl.Float64, "device": pl.String}), folder, "variants")
    save_table(parity, folder, "parity")
    save_table(accuracy, folder, "accuracy")
    save_table(latency, folder, "latency")
    save_json(folder, "environment", env)
    save_json(folder, "config", {**config.to_dict(), "datasets": {k: [str(p) for p in v] for k, v in sets.items()},
                                 "seconds": round(time.perf_counter() - start, 1)})
    return write_report(folder)
