"""PNG plots of a results folder (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

#: Side-by-side panels, in order: file stem in ``crops/`` -> title.
CROP_PANELS = {"hr": "HR (ground truth)", "bicubic": "bicubic", "fp32": "fp32", "fp16": "fp16", "int8": "int8"}


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(latency: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Median latency (ms, log) against input megapixels (log), batch 1, one line per variant."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = latency.filter((pl.col("status") == "ok") & (pl.col("batch") == 1))
    for (variant,), group in ok.sort("variant").group_by("variant", maintain_order=True):
        g = group.with_columns((pl.col("height") * pl.col("width") / 1e6).alias("mp")).sort("mp")
        ax.plot(g["mp"].to_numpy(), g["p50_ms"].to_numpy(), marker="o", label=str(variant))
    ax.set(xscale="log", yscale="log", xlabel="input size (megapixels, LR)", ylabel="p50 latency (ms)",
           title="Latency vs image size (batch 1)")
    ax.grid(True, which="both", alpha=0.3)
    if ok.height:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_tradeoff(points: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Speed-up over torch fp32 (x) against Y-PSNR drop in dB (y), one point per variant, coloured by
    precision. ``points``: columns ``variant, precision, speedup, psnr_drop``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {"fp32": "tab:blue", "fp16": "tab:orange", "bf16": "tab:green", "int8": "tab:red"}
    for row in points.iter_rows(named=True):
        if row["speedup"] is None or row["psnr_drop"] is None:
            continue
        ax.scatter(row["speedup"], row["psnr_drop"], color=colours.get(row["precision"], "grey"),
                   label=row["precision"])
        ax.annotate(row["variant"], (row["speedup"], row["psnr_drop"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    if unique:
        ax.legend(unique.values(), unique.keys(), title="precision", fontsize=8)
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.axvline(1.0, color="black", linewidth=0.5)
    ax.set(xlabel="speed-up over torch fp32 (geometric mean over sizes, batch 1)",
           ylabel="Y-PSNR drop vs torch fp32 (dB)", title="Speed-up vs accuracy drop")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_crops(crops: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """The saved crops side by side (HR, bicubic, fp32, fp16, int8); a missing one says so."""
    from sr_deploy.data.image_io import read_image

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CROP_PANELS), figsize=(3 * len(CROP_PANELS), 3.3))
    for ax, (stem, title) in zip(axes, CROP_PANELS.items(), strict=True):
        file = Path(crops) / f"{stem}.png"
        if file.is_file():
            img = read_image(file)
            ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray", interpolation="nearest")
        else:
            ax.imshow(np.full((8, 8), 0.9), cmap="gray", vmin=0, vmax=1)
            ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    return _save(fig, path)


def _save(fig: object, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    import io

    from sr_deploy.artifacts import atomic_write_bytes

    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(buf, format="png", dpi=110)  # type: ignore[attr-defined]
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
