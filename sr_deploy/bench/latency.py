"""Latency of an upscaler at one input shape: cold first call, warm statistics, memory, stability.

Timings are wall-clock (``time.perf_counter``) around ``Upscaler.run`` on host numpy arrays, so
they include host<->device copies for GPU backends. ``first_call_ms`` is the first run of this
shape on this upscaler (per-shape setup: ORT allocations, cuDNN algorithm search, engine profile
switch); then ``warmup`` untimed runs, then ``repeats`` timed runs. When the spread ``p90 / p50``
exceeds ``max_spread`` (noisy machine) the timed runs are repeated, up to ``max_attempts`` times,
and the attempt with the smallest spread is kept (``stable`` says whether one met the bound).

Throughput counts output pixels: ``mp_per_s = N * sH * sW / 1e6 / p50_s``, ``images_per_s = N / p50_s``.
Memory: ``peak_rss_mb`` is the peak resident memory of the whole process from the first call to the
last timed run (:class:`PeakRss`, sampled in the background, transient buffers inside a run
included); the bench keeps one variant loaded at a time, so it is this variant at this shape plus
the process baseline. On CUDA devices with ``nvidia-ml-py`` installed, ``gpu_mem_mb`` is the GPU's
used memory (all processes) sampled after every run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import psutil

from sr_deploy.backends.base import Upscaler


@dataclass(frozen=True)
class LatencyStats:
    """Timing of one (upscaler, input shape). Times in milliseconds, memory in MiB."""

    batch: int
    height: int
    width: int
    first_call_ms: float
    repeats: int
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    mp_per_s: float
    images_per_s: float
    spread: float
    stable: bool
    attempts: int
    peak_rss_mb: float
    gpu_mem_mb: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(times_s: list[float]) -> dict[str, float]:
    """Mean, std, p50/p90/p99 and min (ms) of a list of durations in seconds; ``spread = p90 / p50``."""
    ms = np.asarray(times_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        raise ValueError("no timings to summarize")
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    return {
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "min_ms": float(ms.min()),
        "spread": p90 / p50 if p50 > 0 else float("inf"),
    }


class PeakRss:
    """Peak resident memory (MiB) of this process while the ``with`` block runs.

    A background thread samples the RSS (psutil) every ``interval_s`` seconds, and once at entry and
    exit, so memory a run allocates and frees before it returns is seen, short of spikes briefer
    than the interval. (The kernel's own high-water mark would be exact, but resetting it per
    shape would falsify the process's peak that ``/usr/bin/time`` and ``getrusage`` report.)
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self._process = psutil.Process()
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="sr-deploy-peak-rss", daemon=True)

    def sample(self) -> None:
        self._peak = max(self._peak, self._process.memory_info().rss)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> PeakRss:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def peak_mb(self) -> float:
        return self._peak / 2**20


def rss_mb() -> float:
    """The resident memory of this process now, in MiB."""
    return float(psutil.Process().memory_info().rss) / 2**20


class _GpuMemory:
    """Used memory of the CUDA device through NVML (nvidia-ml-py); inert when unavailable."""

    def __init__(self, device: str) -> None:
        self.handle: Any = None
        if not device.startswith("cuda"):
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            index = int(device.partition(":")[2] or 0)
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
        except Exception:  # NVML missing or no driver: GPU memory is simply not reported
            self.handle = None

    def used_mb(self) -> float | None:
        if self.handle is None:
            return None
        return float(self._nvml.nvmlDeviceGetMemoryInfo(self.handle).used) / 2**20


def measure(
    upscaler: Upscaler,
    batch: np.ndarray,
    warmup: int = 3,
    repeats: int = 20,
    max_spread: float = 1.2,
    max_attempts: int = 3,
    budget_s: float | None = None,
) -> LatencyStats:
    """Time ``upscaler.run(batch)`` (``batch``: ``N x 3 x H x W`` float32 in [0, 1]); see the module doc.

    ``budget_s``: cap the timed runs of one attempt at about this many seconds (never fewer than
    3 runs, never more than ``repeats``), estimated from the last warm-up run; ``repeats`` in the
    result is the number actually timed.
    """
    if repeats < 1 or warmup < 0 or max_attempts < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, max_attempts >= 1 (got {repeats}, {warmup}, {max_attempts})")
    gpu = _GpuMemory(upscaler.device)
    gpu_used: list[float] = []

    def sample_gpu() -> None:
        used = gpu.used_mb()
        if used is not None:
            gpu_used.append(used)

    with PeakRss() as rss:
        start = time.perf_counter()
        out = upscaler.run(batch)
        first = time.perf_counter() - start
        sample_gpu()
        per_run = first
        for _ in range(warmup):
            t0 = time.perf_counter()
            upscaler.run(batch)
            per_run = time.perf_counter() - t0
        if budget_s is not None and per_run > 0:
            repeats = max(min(repeats, 3), min(repeats, int(budget_s / per_run)))
        best: dict[str, float] | None = None
        attempts = 0
        while attempts < max_attempts:
            attempts += 1
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                upscaler.run(batch)
                times.append(time.perf_counter() - t0)
                sample_gpu()
            stats = summarize(times)
            if best is None or stats["spread"] < best["spread"]:
                best = stats
            if stats["spread"] <= max_spread:
                break
    assert best is not None
    n, _, h, w = batch.shape
    out_pixels = float(np.prod(out.shape[2:])) * n
    p50_s = best["p50_ms"] / 1e3
    return LatencyStats(
        batch=n,
        height=h,
        width=w,
        first_call_ms=first * 1e3,
        repeats=repeats,
        mp_per_s=out_pixels / 1e6 / p50_s if p50_s > 0 else float("inf"),
        images_per_s=n / p50_s if p50_s > 0 else float("inf"),
        stable=best["spread"] <= max_spread,
        attempts=attempts,
        peak_rss_mb=rss.peak_mb,
        gpu_mem_mb=max(gpu_used) if gpu_used else None,
        **best,
    )
