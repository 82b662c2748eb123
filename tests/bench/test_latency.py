"""Latency statistics on real runs (structure and consistency, never speed)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from sr_deploy.bench.latency import PeakRss, measure, rss_mb, summarize
from sr_deploy.runtime import Upscaler, load


def test_summarize_known_durations() -> None:
    s = summarize([0.001 * v for v in range(1, 101)])  # 1..100 ms
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["min_ms"] == pytest.approx(1.0)
    assert s["std_ms"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s["spread"] == pytest.approx(90.1 / 50.5)
    with pytest.raises(ValueError):
        summarize([])


def test_measure_real_onnx_run(random_tiny_onnx: Path) -> None:
    upscaler = load(random_tiny_onnx, backend="onnxruntime")
    batch = np.random.default_rng(0).random((2, 3, 12, 10), dtype=np.float32)
    s = measure(upscaler, batch, warmup=1, repeats=4, max_attempts=2)
    assert (s.batch, s.height, s.width) == (2, 12, 10)
    assert s.repeats == 4 and 1 <= s.attempts <= 2
    assert s.first_call_ms > 0 and 0 < s.min_ms <= s.p50_ms <= s.p90_ms <= s.p99_ms
    assert s.images_per_s == pytest.approx(2 / (s.p50_ms / 1e3))
    assert s.mp_per_s == pytest.approx(2 * 48 * 40 / 1e6 / (s.p50_ms / 1e3))
    assert s.stable == (s.spread <= 1.2)
    assert s.peak_rss_mb > 10 and s.gpu_mem_mb is None  # CPU: no GPU memory reported
    assert set(s.to_dict()) >= {"first_call_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "mp_per_s"}


def test_peak_rss_sees_memory_freed_inside_the_block() -> None:
    before = rss_mb()
    with PeakRss() as peak:
        block = np.ones(256 * 2**20 // 8)  # 256 MiB, touched
        deadline = time.monotonic() + 10.0  # however busy the machine, the sampler gets to run
        while peak.peak_mb < before + 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        del block
    assert rss_mb() < before + 128  # freed again ...
    assert peak.peak_mb > before + 200  # ... yet counted in the peak


class AlternatingSleep(Upscaler):
    """Bicubic whose runs alternate between ~1 ms and ~30 ms: a spread no re-run can fix."""

    def __init__(self) -> None:
        self.inner = load("bicubic", scale=2)
        self.name, self.device, self.precision = "alternating", "cpu", "fp64"
        self.descriptor = self.inner.descriptor
        self.calls = 0

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        time.sleep(0.03 if self.calls % 2 else 0.001)
        return self.inner.run(batch)


def test_wide_spread_is_re_run_then_flagged_unstable() -> None:
    up = AlternatingSleep()
    s = measure(up, np.zeros((1, 3, 4, 4), np.float32), warmup=0, repeats=6, max_spread=1.2, max_attempts=3)
    assert s.attempts == 3 and not s.stable and s.spread > 1.2
    assert up.calls == 1 + 3 * 6  # cold call + three attempts


def test_budget_caps_repeats_but_keeps_three() -> None:
    up = AlternatingSleep()
    s = measure(up, np.zeros((1, 3, 4, 4), np.float32), warmup=1, repeats=50, max_attempts=1, budget_s=1e-6)
    assert s.repeats == 3


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="repeats"):
        measure(load("bicubic", scale=2), np.zeros((1, 3, 4, 4), np.float32), repeats=0)
