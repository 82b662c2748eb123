"""A results folder: the tables of one benchmark run (Parquet + CSV), its environment and config.

Layout of ``RESULTS_DIR``::

    variants.{parquet,csv}   one row per variant: status ok / not available / failed, reason, load time
    parity.{parquet,csv}     one row per variant: errors vs torch fp32, pass/fail, diverging layer
    accuracy.{parquet,csv}   one row per (variant, dataset, image): Y-PSNR / SSIM
    latency.{parquet,csv}    one row per (variant, batch, H, W): first call, warm stats, memory
    environment.json         :func:`sr_deploy.bench.environment.environment`
    config.json              the :class:`~sr_deploy.bench.config.BenchConfig` that produced it
    crops/*.png              side-by-side crops (HR, bicubic, fp32, fp16, int8) for the report

Parquet is what the report and ``--compare`` read back; CSV is for people and spreadsheets.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from sr_deploy.artifacts import atomic_write_bytes, atomic_write_json
from sr_deploy.bench.environment import environment, machine_slug

TABLES = ("variants", "parity", "accuracy", "latency")


def save_table(df: pl.DataFrame, folder: str | os.PathLike[str], name: str,
               formats: Sequence[str] = ("parquet", "csv")) -> None:
    """Write ``df`` as ``name.parquet`` and/or ``name.csv`` in ``folder`` (``formats``), each atomically."""
    writers: dict[str, Callable[[io.BytesIO], object]] = {"parquet": df.write_parquet, "csv": df.write_csv}
    for suffix in formats:
        buf = io.BytesIO()
        writers[suffix](buf)
        atomic_write_bytes(Path(folder) / f"{name}.{suffix}", buf.getvalue())


def results_folder(template: str, env: dict[str, Any] | None = None) -> Path:
    """The folder a benchmark script writes to, created: ``template`` (its ``--out``) with ``{machine}`` replaced
    by :func:`~sr_deploy.bench.environment.machine_slug` of ``env`` (this machine's when None)."""
    folder = Path(template.replace("{machine}", machine_slug(env if env is not None else environment())))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_markdown(folder: str | os.PathLike[str], name: str, lines: Sequence[str]) -> Path:
    """Write ``lines`` as ``name.md`` in ``folder`` atomically, one per line; returns its path."""
    path = Path(folder) / f"{name}.md"
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def load_table(folder: str | os.PathLike[str], name: str) -> pl.DataFrame:
    """Read ``name.parquet`` from a results folder; FileNotFoundError naming the file when absent."""
    path = Path(folder) / f"{name}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {folder} is not a complete sr-deploy results folder")
    try:
        return pl.read_parquet(path)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable Parquet table ({type(exc).__name__}: {exc})") from None


def save_json(folder: str | os.PathLike[str], name: str, obj: Any) -> None:
    atomic_write_json(Path(folder) / f"{name}.json", obj)


def load_json(folder: str | os.PathLike[str], name: str) -> Any:
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {folder} is not a complete sr-deploy results folder")
    return json.loads(path.read_text())
