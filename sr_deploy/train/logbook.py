"""Training log: one row per log interval in ``log.csv`` (polars) and the curves in ``curves.png``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from sr_deploy.artifacts import atomic_open


class Logbook:
    """Rows of ``{step, loss..., lr, images_per_s, val_psnr_y, val_ssim_y}``; resumable.

    On resume, rows after the checkpoint's step are dropped so the log matches the run exactly.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.csv, self.png = run_dir / "log.csv", run_dir / "curves.png"
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.csv.is_file():
            self.rows = pl.read_csv(self.csv).filter(pl.col("step") <= resume_step).to_dicts()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, infer_schema_length=None)

    def write(self) -> None:
        """Write ``log.csv`` and ``curves.png`` atomically."""
        if not self.rows:
            return
        df = self.frame()
        with atomic_open(self.csv, "wb") as fh:
            df.write_csv(fh)
        self._plot(df)

    def _plot(self, df: pl.DataFrame) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        loss_cols = [c for c in df.columns if c.startswith("loss")]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for c in loss_cols:
            axes[0].plot(df["step"], df[c], label=c)
        axes[0].set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
        axes[0].legend()
        if "val_psnr_y" in df.columns:
            val = df.filter(pl.col("val_psnr_y").is_not_null() & pl.col("val_psnr_y").is_not_nan())
            if val.height and all(math.isfinite(v) for v in val["val_psnr_y"]):
                axes[1].plot(val["step"], val["val_psnr_y"], marker="o")
        axes[1].set(xlabel="step", ylabel="Y-PSNR (dB)", title="validation")
        fig.tight_layout()
        with atomic_open(self.png, "wb") as fh:
            fig.savefig(fh, format="png", dpi=90)
        plt.close(fig)
