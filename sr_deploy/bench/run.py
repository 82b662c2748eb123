"""``sr-deploy bench``: parity, accuracy and latency of every variant, saved as a results folder.

Order of work: environment -> plan the variants (names and precisions from metadata, nothing
loaded) -> the torch fp32 reference outputs on real LR crops -> then one variant at a time: open it,
parity against the reference (with layer localisation for an ONNX variant that fails), latency per
input shape, accuracy against HR ground truth per dataset, its side-by-side crop, close it -> tables
+ report (see :mod:`sr_deploy.bench.results` for the folder layout).

One variant at a time bounds the run's memory by the largest single variant (ONNX Runtime keeps
per-shape arenas for the life of a session) and makes the latency table's memory columns that
variant's own. Latency runs before accuracy, so the evaluation images (larger than most latency
shapes) have not grown the arenas yet when memory is measured.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sr_deploy.backends.base import Upscaler
from sr_deploy.bench.config import BenchConfig
from sr_deploy.bench.divergence import localize_divergence
from sr_deploy.bench.environment import environment, machine_slug
from sr_deploy.bench.latency import LatencyStats, measure, rss_mb
from sr_deploy.bench.report import write_report
from sr_deploy.bench.results import save_json, save_table
from sr_deploy.bench.tiling import tiling_rows
from sr_deploy.bench.variants import REFERENCE, Variant, plan_variants
from sr_deploy.compare import Comparison, compare, tolerance_for
from sr_deploy.data.crops import parity_inputs
from sr_deploy.data.datasets import EvalPair, collect_images, crop_pair, make_eval_pair
from sr_deploy.data.image_io import write_image
from sr_deploy.models.weights import load_weights
from sr_deploy.runtime.load import load
from sr_deploy.runtime.tiling import TiledUpscaler
from sr_deploy.scoring import evaluate, super_resolve_pair

#: Parity batches (N, H, W) in LR pixels: two sizes, one of them a batch of two.
PARITY_SHAPES = ((1, 48, 64), (2, 32, 40))
#: Side-by-side crop: LR side in pixels (the HR crop is ``scale`` times larger).
CROP_LR = 40
#: Precisions with a side-by-side crop (``crops/{precision}.png``).
CROP_PRECISIONS = ("fp32", "fp16", "int8")

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


def _parity_row(v: Variant, metrics: Comparison | None, status: str, divergence: Any = None) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": v.name, "backend": v.backend, "precision": v.precision, "status": status}
    if metrics is not None:
        row.update(metrics.metrics())
        first = None if divergence is None else divergence.first
        row["diverging_layer"] = None if first is None else first.torch_module
        row["divergence"] = None if divergence is None else divergence.summary()
    return row


def parity_row(v: Variant, up: Upscaler | None, inputs: list[np.ndarray], refs: list[np.ndarray], weights: Path,
               log: Log) -> dict[str, Any]:
    """``v``'s errors against the reference outputs ``refs`` of ``inputs``, pass/fail, and for a
    failing ONNX variant the first diverging layer (``up``: ``v`` opened, None when it cannot run). A fixed-size
    export runs them tiled into windows of its size, as ``upscale`` runs it (exact halo: equal up to rounding), on
    the inputs at least that large (a smaller image is padded up to it: not the model's own zero borders)."""
    if up is None:
        return _parity_row(v, None, v.label)
    runner, fixed = up, up.descriptor.fixed_size
    if fixed is not None:
        runner = TiledUpscaler(up)  # not closed: that would close ``up``
        kept = [(b, r) for b, r in zip(inputs, refs, strict=True) if b.shape[2] >= fixed[0] and b.shape[3] >= fixed[1]]
        if not kept:
            return _parity_row(v, None, f"not available: every parity input is smaller than the fixed {fixed[0]}x"
                                        f"{fixed[1]} input")
        inputs, refs = [b for b, _ in kept], [r for _, r in kept]
    if not all(runner.accepts(tuple(b.shape)) for b in inputs):
        return _parity_row(v, None, "not available: parity inputs outside the accepted shapes")
    metrics = compare([runner.run(b) for b in inputs], refs, tolerance_for(v.precision), v.name,
                      [tuple(b.shape) for b in inputs])
    divergence = None
    if not metrics.passed and v.backend == "onnxruntime" and runner is up:  # layer outputs at the inputs' size
        net, _ = load_weights(weights)
        divergence = localize_divergence(v.source, net, inputs[0], v.precision)
        log(f"{v.name} fails parity: {divergence.summary()}")
    return _parity_row(v, metrics, "ok", divergence)


def parity_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The parity table (one row per variant) with fixed column types."""
    return pl.DataFrame(rows, infer_schema_length=None, schema_overrides={
        "diverging_layer": pl.String, "divergence": pl.String, "psnr_db": pl.Float64, "max_abs": pl.Float64,
        "mean_abs": pl.Float64, "p99_abs": pl.Float64, "passed": pl.Boolean})


def accuracy_rows(v: Variant, up: Upscaler | None, sets: dict[str, list[Path]], log: Log) -> list[dict[str, Any]]:
    """Y-PSNR/SSIM of ``up`` (``v`` opened) per (dataset, image), or one row per dataset with the
    reason it did not run."""
    rows: list[dict[str, Any]] = []
    for name, images in sets.items():
        if up is None:
            rows.append({"variant": v.name, "precision": v.precision, "dataset": name, "status": v.label})
            continue
        try:
            df = evaluate(TiledUpscaler(up), images)  # tiled within the memory budget: equal to whole-image runs
        except ValueError as exc:  # e.g. an engine whose profile does not cover the windows
            rows.append({"variant": v.name, "precision": v.precision, "dataset": name,
                         "status": f"not available: {exc}"})
            continue
        log(f"accuracy {v.name} on {name}: {float(df['psnr_y'].mean()):.3f} dB")  # type: ignore[arg-type]
        rows.extend({"variant": v.name, "precision": v.precision, "dataset": name, "status": "ok", **r}
                    for r in df.to_dicts())
    return rows


def accuracy_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The accuracy table (one row per variant, dataset and image) with fixed column types."""
    return pl.DataFrame(rows, infer_schema_length=None,
                        schema_overrides={"name": pl.String, "psnr_y": pl.Float64, "ssim_y": pl.Float64})


def centre_crop(path: Path, scale: int) -> EvalPair:
    """A ``CROP_LR``-pixel LR crop (and its HR crop) from the middle of an evaluation image."""
    pair = make_eval_pair(path, scale)
    c = min(CROP_LR, *pair.lr.shape[:2])
    return crop_pair(pair, (pair.lr.shape[0] - c) // 2, (pair.lr.shape[1] - c) // 2, c, scale)


def crop_rank(v: Variant) -> int:
    """Which variant's output a precision's crop shows, lowest first: the reference for fp32, an ONNX
    Runtime variant for the others, else the first available."""
    return int(v.name != REFERENCE) if v.precision == "fp32" else int(v.backend != "onnxruntime")


def _latency_row(v: Variant, shape: tuple[int, int, int], stats: LatencyStats | None, status: str) -> dict[str, Any]:
    n, h, w = shape
    row: dict[str, Any] = {"variant": v.name, "backend": v.backend, "precision": v.precision,
                           "batch": n, "height": h, "width": w, "status": status}
    if stats is not None:
        row.update(stats.to_dict())
    return row


def latency_rows(v: Variant, up: Upscaler | None, config: BenchConfig, base_rss_mb: float,
                 log: Log) -> list[dict[str, Any]]:
    """One row per (batch, H, W) of ``config``: warm stats of ``up`` (``v`` opened), or the reason it
    was not measured. ``rss_increase_mb`` is the shape's ``peak_rss_mb`` minus ``base_rss_mb``, the
    process RSS just before ``v`` was opened: what this variant costs at this shape, its weights,
    arenas and any library first loaded for it included."""
    rng = np.random.default_rng(0)  # the same inputs for every variant
    rows = []
    for shape in config.shapes():
        n, h, w = shape
        if up is None:
            rows.append(_latency_row(v, shape, None, v.label))
            continue
        if not up.accepts((n, 3, h, w)):
            rows.append(_latency_row(v, shape, None, f"not available: {n}x3x{h}x{w} outside the accepted shapes"))
            continue
        batch = rng.random((n, 3, h, w), dtype=np.float32)
        stats = measure(up, batch, config.warmup, config.repeats, config.max_spread, config.max_attempts,
                        config.budget_s)
        log(f"latency {v.name} {n}x{h}x{w}: p50 {stats.p50_ms:.1f} ms ({stats.mp_per_s:.2f} MP/s), "
            f"peak RSS {stats.peak_rss_mb:.0f} MiB")
        rows.append({**_latency_row(v, shape, stats, "ok"), "rss_increase_mb": stats.peak_rss_mb - base_rss_mb})
    return rows


def latency_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The latency table (one row per variant and shape) with fixed column types."""
    floats = ("first_call_ms", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms", "min_ms", "mp_per_s",
              "images_per_s", "spread", "peak_rss_mb", "rss_increase_mb", "gpu_mem_mb")
    return pl.DataFrame(rows, infer_schema_length=None,
                        schema_overrides={**{k: pl.Float64 for k in floats}, "repeats": pl.Int64,
                                          "attempts": pl.Int64, "stable": pl.Boolean})


def tiling_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The tiling-overhead table (one row per variant, image size and memory budget) with fixed column types."""
    floats = ("budget_gib", "computed_ratio", "tiled_p50_ms", "whole_p50_ms", "overhead_pct")
    ints = ("height", "width", "windows", "batch")
    return pl.DataFrame(rows, infer_schema_length=None,
                        schema_overrides={**{k: pl.Float64 for k in floats}, **{k: pl.Int64 for k in ints},
                                          "tile": pl.String})


def run_bench(config: BenchConfig, out: str | os.PathLike[str], *, log: Log = print) -> Path:
    """Measure every variant of ``config`` and write the results folder ``out`` plus its report.

    ``{machine}`` in ``out`` is replaced by :func:`~sr_deploy.bench.environment.machine_slug`.
    Returns the path of ``report.md``. Raises ValueError / FileNotFoundError for bad inputs (the
    reference model, data folders); variants that cannot run are recorded, not raised.
    """
    start = time.perf_counter()
    env = environment(config.ort_threads)
    folder = Path(str(out).replace("{machine}", machine_slug(env)))
    folder.mkdir(parents=True, exist_ok=True)
    sets = datasets(config)
    variants = plan_variants(config)
    for v in variants:
        if v.available:
            tolerance_for(v.precision)  # fails early on a precision without a rule
    reference, weights, first_images = variants[0], Path(variants[0].source), next(iter(sets.values()))
    with reference.opened() as ref:  # reopened in its turn below: every variant is measured alone
        if ref is None:
            raise ValueError(f"the torch fp32 reference for {weights} cannot run: {reference.reason}")
        scale = ref.scale
        inputs = parity_inputs(scale, paths=first_images, sizes=PARITY_SHAPES)
        refs = [ref.run(b) for b in inputs]
    pair = centre_crop(first_images[0], scale)
    bicubic = load("bicubic", scale=scale)
    crops = {"hr": pair.hr, "bicubic": super_resolve_pair(bicubic, pair)}
    crop_ranks: dict[str, int] = {}
    parity: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    tiling: list[dict[str, Any]] = []
    accuracy = accuracy_rows(Variant("bicubic", "bicubic", "fp64", ""), bicubic, sets, log)
    for v in variants:
        base_rss_mb = rss_mb()
        with v.opened() as up:
            log(f"{v.name}: {v.label}")
            parity.append(parity_row(v, up, inputs, refs, weights, log))
            latency += latency_rows(v, up, config, base_rss_mb, log)
            if up is not None and (not config.tiling_variants or v.name in config.tiling_variants):
                tiling += [{"variant": v.name, "precision": v.precision, **row} for size in config.tiling_sizes
                           for row in tiling_rows(up, size, repeats=config.tiling_repeats, log=log)]
            accuracy += accuracy_rows(v, up, sets, log)
            if (up is not None and v.precision in CROP_PRECISIONS
                    and crop_rank(v) < crop_ranks.get(v.precision, 2) and up.accepts((1, 3, *pair.lr.shape[:2]))):
                crops[v.precision], crop_ranks[v.precision] = super_resolve_pair(up, pair), crop_rank(v)
    for name, image in crops.items():
        write_image(folder / "crops" / f"{name}.png", image)
    save_table(pl.DataFrame([v.row() for v in variants], infer_schema_length=None,
                            schema_overrides={"load_s": pl.Float64, "device": pl.String}), folder, "variants")
    save_table(parity_table(parity), folder, "parity")
    save_table(accuracy_table(accuracy), folder, "accuracy")
    save_table(latency_table(latency), folder, "latency")
    if tiling:
        save_table(tiling_table(tiling), folder, "tiling")
    save_json(folder, "environment", env)
    save_json(folder, "config", {**config.to_dict(), "datasets": {k: [str(p) for p in v] for k, v in sets.items()},
                                 "seconds": round(time.perf_counter() - start, 1)})
    return write_report(folder)
