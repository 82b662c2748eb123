"""Tiling overhead rows: the plan's arithmetic, both timings side by side, and the bench's table and report."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sr_deploy.bench.results import load_table
from sr_deploy.bench.tiling import computed_ratio, tiling_rows, whole_image_fits
from sr_deploy.runtime.load import load
from sr_deploy.runtime.tiling import bytes_per_pixel, plan_tiles


def test_rows_compare_each_budget_with_the_whole_image(random_tiny_weights: Path) -> None:
    with load(random_tiny_weights, backend="torch", precision="fp32") as up:
        per_pixel = bytes_per_pixel(up.descriptor, "fp32")
        small = per_pixel * 24 * 34  # windows of at most 816 input pixels: two on a 24 x 40 image (halo 10)
        rows = tiling_rows(up, (24, 40), budgets={"large": 1 << 30, "small": small}, warmup=0, repeats=1)
        assert [r["budget"] for r in rows] == ["large", "small"] and all(r["status"] == "ok" for r in rows)
        large, cut = rows
        assert large["windows"] == 1 and large["computed_ratio"] == 1.0 and large["tile"] == "24x40"
        plan = plan_tiles(up, 24, 40, memory_budget=small)
        assert cut["windows"] == plan.count > 1 and cut["computed_ratio"] == computed_ratio(plan, 24, 40) > 1.0
        assert cut["tile"] == f"{plan.tile_h}x{plan.tile_w}" and cut["batch"] == plan.batch
        # one whole-image timing shared by the rows, and the overhead computed from the two p50s
        assert large["whole_p50_ms"] == cut["whole_p50_ms"] > 0
        for r in rows:
            assert r["overhead_pct"] == pytest.approx(100 * (r["tiled_p50_ms"] / r["whole_p50_ms"] - 1))


def test_whole_image_run_is_skipped_when_it_would_not_fit(random_tiny_weights: Path) -> None:
    with load(random_tiny_weights, backend="torch", precision="fp32") as up:
        assert whole_image_fits(up, 24, 40) is None
        reason = whole_image_fits(up, 400_000, 400_000)  # 1.6e11 pixels: far beyond any memory
        assert reason is not None and reason.startswith("not measured: a whole-image run needs about")


def test_bench_writes_the_tiling_table_and_report_section(bench_results: Path) -> None:
    tiling = load_table(bench_results, "tiling")
    assert set(tiling["budget"]) == {"default", "1 GiB"} and (tiling["height"] == 24).all()
    ok = tiling.filter(pl.col("status") == "ok")
    assert len(ok) >= 2 and ok["overhead_pct"].is_not_null().all()
    report = (bench_results / "report.md").read_text()
    assert "## Tiling overhead" in report and "computed_ratio" in report


def test_tiling_rows_only_for_the_variants_named(random_tiny_weights: Path, tmp_path: Path) -> None:
    from sr_deploy.bench.config import BenchConfig
    from sr_deploy.bench.run import run_bench
    from tests.bench.conftest import SMALL_BENCH

    config = BenchConfig(model=str(random_tiny_weights), backends=("torch",), precisions=("fp32",),
                         **{**SMALL_BENCH, "tiling_variants": ("torch-fp32+channels_last",)})
    run_bench(config, tmp_path, log=lambda _m: None)
    assert set(load_table(tmp_path, "tiling")["variant"]) == {"torch-fp32+channels_last"}
    assert set(load_table(tmp_path, "latency")["variant"]) >= {"torch-fp32", "torch-fp32+channels_last"}
