"""The Markdown report of a results folder, and the comparison of two results folders.

:func:`write_report` reads only what :func:`sr_deploy.bench.run.run_bench` saved (Parquet
tables, ``environment.json``, ``config.json``, ``crops/``), so ``sr-deploy report RESULTS_DIR``
regenerates the same report, tables and plots at any time. :func:`compare` lines two runs up and
lists regressions past thresholds (latency ratio, Y-PSNR drop, parity that stopped passing,
variants that stopped running).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sr_deploy.artifacts import atomic_write_bytes
from sr_deploy.bench.plots import plot_crops, plot_latency, plot_tradeoff
from sr_deploy.bench.results import load_json, load_table
from sr_deploy.bench.variants import REFERENCE
from sr_deploy.compare import TOLERANCES


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 1e6):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pl.DataFrame, columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """``df`` (or its ``columns`` present in it) as a GitHub Markdown table."""
    cols = [c for c in (columns or df.columns) if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.select(cols).iter_rows():
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    return "\n".join(lines)


def accuracy_summary(accuracy: pl.DataFrame) -> pl.DataFrame:
    """Mean Y-PSNR/SSIM per (variant, dataset) and the drop from torch fp32; not-run variants keep
    their status and no numbers."""
    ok = accuracy.filter(pl.col("status") == "ok")
    means = ok.group_by(["variant", "precision", "dataset"], maintain_order=True).agg(
        pl.col("psnr_y").mean(), pl.col("ssim_y").mean(), pl.len().alias("images"))
    ref = means.filter(pl.col("variant") == REFERENCE).select(
        "dataset", pl.col("psnr_y").alias("ref_psnr"), pl.col("ssim_y").alias("ref_ssim"))
    means = means.join(ref, on="dataset", how="left").with_columns(
        (pl.col("ref_psnr") - pl.col("psnr_y")).alias("psnr_drop"),
        (pl.col("ref_ssim") - pl.col("ssim_y")).alias("ssim_drop"),
        pl.lit("ok").alias("status")).drop("ref_psnr", "ref_ssim")
    missing = accuracy.filter(pl.col("status") != "ok").select("variant", "precision", "dataset", "status").unique(
        maintain_order=True)
    return pl.concat([means, missing], how="diagonal_relaxed")


def tradeoff_points(latency: pl.DataFrame, summary: pl.DataFrame) -> pl.DataFrame:
    """Per variant: speed-up over torch fp32 (geometric mean of p50 ratios over the batch-1 sizes both
    ran) and the Y-PSNR drop on the first dataset."""
    ok = latency.filter((pl.col("status") == "ok") & (pl.col("batch") == 1))
    ref = ok.filter(pl.col("variant") == REFERENCE).select("height", "width", pl.col("p50_ms").alias("ref_ms"))
    ratios = ok.join(ref, on=["height", "width"]).group_by(["variant", "precision"], maintain_order=True).agg(
        (pl.col("ref_ms") / pl.col("p50_ms")).log().mean().exp().alias("speedup"))
    ok_summary = summary.filter(pl.col("status") == "ok")
    first = ok_summary["dataset"][0] if ok_summary.height else None
    drops = ok_summary.filter(pl.col("dataset") == first).select("variant", "psnr_drop")
    return ratios.join(drops, on="variant", how="left")


def _environment_lines(env: dict[str, Any]) -> list[str]:
    cpu, threads = env.get("cpu", {}), env.get("threads", {})
    gpus = ", ".join(f"{g['name']} ({g['memory_mb'] / 1024:.0f} GiB, driver {g['driver']})"
                     for g in env.get("gpus", [])) or "none"
    return [
        f"- host: `{env.get('hostname')}`, {env.get('os')}, Python {env.get('python')}",
        f"- CPU: {cpu.get('model')} ({cpu.get('physical_cores')} physical / {cpu.get('logical_cores')} logical "
        f"cores, {cpu.get('affinity_cores')} usable); ISA class `{cpu.get('isa_class', '?')}`: "
        f"{', '.join(cpu.get('isa', [])) or 'none of interest'}",
        f"- memory: {env.get('memory_gb', 0):.1f} GiB; GPU: {gpus}",
        f"- torch {env.get('torch')} (CUDA {env.get('versions', {}).get('torch_cuda')}), ONNX Runtime "
        f"{env.get('onnxruntime') or 'not installed'}, OpenVINO "
        f"{env.get('openvino') or ('not installed' if 'openvino' in env else 'version not recorded')}, TensorRT "
        f"{env.get('tensorrt') or 'not installed'}",
        f"- threads: torch intra-op {threads.get('torch_intra_op')}, inter-op {threads.get('torch_inter_op')}; "
        f"ORT intra-op {threads.get('ort_intra_op')} (effective {threads.get('ort_intra_op_effective')}); "
        f"env {threads.get('env') or '{}'}",
    ]


#: How to read the memory columns (results folders written since variants are measured one at a time).
MEMORY_NOTE = ("Variants are measured one at a time: peak_rss_mb is the process's peak resident memory while the "
               "shape ran, rss_increase_mb that peak minus the process before the variant was loaded (its weights, "
               "ONNX Runtime arenas and per-shape buffers); gpu_mem_mb is the GPU's used memory.")


def _tiling_lines(folder: Path) -> list[str]:
    """The "Tiling overhead" section, when the run measured it (``tiling.parquet``; older folders have none)."""
    if not (folder / "tiling.parquet").is_file():
        return []
    return [
        "## Tiling overhead",
        "",
        "The same image tiled as `sr-deploy upscale` plans it (window within the memory budget that computes the "
        "fewest pixels, windows batched within the budget) against one whole-image run, side by side on the same "
        "upscaler; `computed_ratio` = pixels computed (halos included) per image pixel, "
        "`overhead_pct` = 100 x (tiled / whole - 1), times are p50 in ms.",
        "",
        markdown_table(load_table(folder, "tiling"),
                       ["variant", "height", "width", "budget", "budget_gib", "tile", "windows", "batch",
                        "computed_ratio", "tiled_p50_ms", "whole_p50_ms", "overhead_pct", "status"], digits=2),
        "",
    ]


def write_report(folder: str | os.PathLike[str]) -> Path:
    """(Re)write ``report.md`` and ``plots/*.png`` of a results folder from its saved files; returns the report path."""
    d = Path(folder)
    variants, parity = load_table(d, "variants"), load_table(d, "parity")
    accuracy, latency = load_table(d, "accuracy"), load_table(d, "latency")
    env, config = load_json(d, "environment"), load_json(d, "config")
    summary = accuracy_summary(accuracy)
    points = tradeoff_points(latency, summary)
    plots = d / "plots"
    plot_latency(latency, plots / "latency.png")
    plot_tradeoff(points, plots / "tradeoff.png")
    plot_crops(d / "crops", plots / "crops.png")

    lat_cols = ["variant", "batch", "height", "width", "status", "first_call_ms", "p50_ms", "p90_ms", "p99_ms",
                "mean_ms", "std_ms", "mp_per_s", "images_per_s", "peak_rss_mb", "rss_increase_mb", "gpu_mem_mb",
                "repeats", "stable"]
    lat = pl.concat([latency.filter(pl.col("status") == "ok"),
                     latency.filter(~pl.col("variant").is_in(latency.filter(pl.col("status") == "ok")["variant"]
                                                            .implode())).unique("variant", maintain_order=True)
                     .with_columns(pl.lit(None, pl.Int64).alias(c) for c in ("batch", "height", "width"))],
                    how="diagonal_relaxed")
    pivot_src = latency.filter(pl.col("batch") == 1).with_columns(
        pl.format("{}x{}", "height", "width").alias("size"),
        pl.when(pl.col("status") == "ok").then(pl.col("p50_ms").round(2).cast(pl.String))
        .otherwise(pl.col("status").str.extract(r"^([^:]+)", 1) + pl.lit(" (see Variants)")).alias("p50"))
    p50 = pivot_src.pivot(on="size", index="variant", values="p50", aggregate_function="first")
    rules = "; ".join(f"{p}: {r.describe()}" for p, r in TOLERANCES.items())
    text = [
        "# sr-deploy benchmark report",
        "",
        f"Model `{config.get('model')}`; reference **{REFERENCE}**; device `{config.get('device')}`; "
        f"sizes {', '.join(config.get('sizes', []))} (LR input pixels), batches {config.get('batches')}; "
        f"{config.get('repeats')} timed runs after {config.get('warmup')} warm-up runs per shape. "
        "Regenerate with `sr-deploy report <this folder>`.",
        "",
        "## Environment",
        "",
        *_environment_lines(env),
        "",
        "## Variants",
        "",
        markdown_table(variants, ["variant", "backend", "precision", "device", "status", "reason", "load_s"]),
        "",
        "## Parity against torch fp32",
        "",
        f"Same inputs (real LR crops), raw float outputs. Pass rules: {rules}.",
        "",
        markdown_table(parity.with_columns(pl.col("passed").replace_strict({True: "pass", False: "**FAIL**"},
                                                                            default=None, return_dtype=pl.String)),
                       ["variant", "precision", "status", "psnr_db", "max_abs", "mean_abs", "p99_abs", "passed",
                        "diverging_layer"], digits=5),
        "",
        *[f"- {r['variant']}: {r['divergence']}" for r in parity.iter_rows(named=True) if r.get("divergence")],
        "",
        "## Accuracy against HR ground truth",
        "",
        "Y-channel PSNR (dB) / SSIM, MATLAB bicubic LR, border shave = scale; drop = torch fp32 minus variant.",
        "",
        markdown_table(summary, ["dataset", "variant", "precision", "status", "images", "psnr_y", "ssim_y",
                                 "psnr_drop", "ssim_drop"], digits=4),
        "",
        "## Latency",
        "",
        "p50 (ms), batch 1:",
        "",
        markdown_table(p50),
        "",
        *([MEMORY_NOTE, ""] if "rss_increase_mb" in latency.columns else []),
        "All shapes (times in ms, memory in MiB, throughput in output megapixels/s):",
        "",
        markdown_table(lat, lat_cols, digits=2),
        "",
        "Speed-up over torch fp32 and accuracy drop:",
        "",
        markdown_table(points, ["variant", "precision", "speedup", "psnr_drop"]),
        "",
        *_tiling_lines(d),
        "## Plots",
        "",
        "![latency vs size](plots/latency.png)",
        "",
        "![speed-up vs accuracy drop](plots/tradeoff.png)",
        "",
        "![side-by-side crop](plots/crops.png)",
        "",
    ]
    report = d / "report.md"
    atomic_write_bytes(report, "\n".join(text).encode())
    return report




@dataclass
class Comparison:
    """Two results folders side by side: ``latency`` and ``accuracy`` deltas, and the ``regressions``."""

    latency: pl.DataFrame
    accuracy: pl.DataFrame
    regressions: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """Both delta tables as Markdown (``change``: p50 ratio - 1; ``psnr_drop``: old - new, dB)."""
        return "\n\n".join(["## Latency (p50, ms)", markdown_table(self.latency, digits=3),
                             "## Accuracy (mean Y-PSNR, dB)", markdown_table(self.accuracy, digits=4)])


def compare_runs(
    old: str | os.PathLike[str],
    new: str | os.PathLike[str],
    max_latency_regression: float = 0.1,
    max_psnr_drop: float = 0.05,
) -> Comparison:
    """Compare results folder ``new`` with ``old``.

    Regressions: a shape whose p50 grew by more than ``max_latency_regression`` (a fraction: 0.1 =
    10 %); a (variant, dataset) whose mean Y-PSNR fell by more than ``max_psnr_drop`` dB; a variant
    that passed parity and now fails; a variant or shape that ran before and no longer runs.
    """
    keys = ["variant", "batch", "height", "width"]
    lat = _side_by_side(load_table(old, "latency"), load_table(new, "latency"), keys, "p50_ms").with_columns(
        (pl.col("new_p50_ms") / pl.col("old_p50_ms") - 1.0).alias("change"))
    acc = _side_by_side(accuracy_summary(load_table(old, "accuracy")), accuracy_summary(load_table(new, "accuracy")),
                        ["variant", "dataset"], "psnr_y").with_columns(
        (pl.col("old_psnr_y") - pl.col("new_psnr_y")).alias("psnr_drop"))
    out = Comparison(lat, acc)
    out.regressions += _flag(
        lat, "latency", lambda r: f"{r['variant']} {r['batch']}x{r['height']}x{r['width']}", "change",
        max_latency_regression, lambda r: f"p50 {r['old_p50_ms']:.2f} -> {r['new_p50_ms']:.2f} ms "
                                          f"(+{r['change']:.1%} > {max_latency_regression:.0%})")
    out.regressions += _flag(
        acc, "accuracy", lambda r: f"{r['variant']} on {r['dataset']}", "psnr_drop", max_psnr_drop,
        lambda r: f"Y-PSNR {r['old_psnr_y']:.3f} -> {r['new_psnr_y']:.3f} dB "
                  f"(-{r['psnr_drop']:.3f} > {max_psnr_drop:g} dB)")
    par_old, par_new = load_table(old, "parity"), load_table(new, "parity")
    if "passed" in par_old.columns and "passed" in par_new.columns:
        was = {r["variant"]: r["passed"] for r in par_old.iter_rows(named=True)}
        for r in par_new.iter_rows(named=True):
            if was.get(r["variant"]) is True and r["passed"] is not True:
                out.regressions.append(f"parity {r['variant']}: passed before, now {r['status']}"
                                       + ("" if r["passed"] is None else " and fails"))
    return out


def _side_by_side(old: pl.DataFrame, new: pl.DataFrame, keys: list[str], value: str) -> pl.DataFrame:
    """``keys``, ``old_status``, ``old_<value>``, ``new_status``, ``new_<value>`` (full join on ``keys``)."""
    def tagged(df: pl.DataFrame, tag: str) -> pl.DataFrame:
        return df.select(*keys, pl.col("status").alias(f"{tag}_status"), pl.col(value).alias(f"{tag}_{value}"))

    return tagged(old, "old").join(tagged(new, "new"), on=keys, how="full", coalesce=True)


def _flag(
    rows: pl.DataFrame,
    kind: str,
    where: Callable[[dict[str, Any]], str],
    delta: str,
    limit: float,
    describe: Callable[[dict[str, Any]], str],
) -> list[str]:
    """Regressions among ``rows`` of :func:`_side_by_side`: ran before and not now, or ``delta > limit``."""
    found = []
    for r in rows.iter_rows(named=True):
        if r["old_status"] == "ok" and r["new_status"] != "ok":
            found.append(f"{kind} {where(r)}: ran before, now {r['new_status'] or 'missing'}")
        elif r[delta] is not None and r[delta] > limit:
            found.append(f"{kind} {where(r)}: {describe(r)}")
    return found
