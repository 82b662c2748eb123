"""TensorRT-style KL-divergence (entropy) calibration thresholds, ONNX Runtime's algorithm without its Python loops.

ONNX Runtime's ``HistogramCollector.get_entropy_threshold`` sums histogram slices with Python's built-in ``sum``
and merges bins in per-bin Python loops: with 2048 bins it spends about 0.45 s per tensor, 32 s of the 49 s an
int8 export of SRResNet x4 (74 calibrated tensors) took on 2 cores (``benchmarks/calibration_speed.py``).
:func:`entropy_threshold` does the same arithmetic on the same types (integer counts with cumulative sums and
reshaped sums, the float64 division truncated into int64 as ORT's assignment does, then ORT's own
``smooth_distribution`` and ``entropy`` in float32), so it chooses exactly the thresholds ORT chooses (tested
against ORT on real histograms) in about a sixth of the time.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def entropy_threshold(histogram: tuple[Any, ...], num_quantized_bins: int) -> tuple[Any, Any]:
    """The (low, high) clipping range minimising the KL divergence between a tensor's value histogram and its
    ``num_quantized_bins``-level quantization, clamped to the observed extremes.

    ``histogram``: ONNX Runtime's entropy collector entry ``(counts, edges, min, max, ...)``: ``counts`` integer,
    one per bin, symmetric about zero (``edges`` has one more element, float32, in the tensor's units)."""
    from onnxruntime.quantization.calibrate import entropy
    from onnxruntime.quantization.quant_utils import smooth_distribution

    hist, edges = np.asarray(histogram[0]), histogram[1]
    if not np.issubdtype(hist.dtype, np.integer):
        raise TypeError(f"histogram counts must be integers, got {hist.dtype}")
    num_bins = hist.size
    zero_bin = num_bins // 2
    half = num_quantized_bins // 2
    dtype = edges.dtype
    below = np.concatenate(([0], np.cumsum(hist, dtype=np.int64)))  # below[k] = sum(hist[:k])
    total = below[-1]
    candidates = range(half, zero_bin + 1)
    divergence = np.zeros(len(candidates))
    bounds: list[tuple[int, int]] = []
    for n, i in enumerate(candidates):
        start, end = zero_bin - i, min(zero_bin + i + 1, num_bins)
        bounds.append((start, end))
        sliced = hist[start:end].astype(np.int64)
        p = sliced.copy()
        p[0] += below[start]  # the outliers fold into the end bins
        p[-1] += total - below[end]
        merged = sliced.size // num_quantized_bins
        body = num_quantized_bins * merged
        levels = sliced[:body].reshape(num_quantized_bins, merged).sum(axis=1)
        levels[-1] += sliced[body:].sum()
        norm = (p[:body] != 0).reshape(num_quantized_bins, merged).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.where(norm != 0, levels / norm, 0.0)
        q = np.zeros(p.size, dtype=np.int64)
        q[:body] = np.repeat(spread, merged).astype(np.int64)  # truncation, as ORT's assignment into int64
        ps, qs = smooth_distribution(p), smooth_distribution(q)
        divergence[n] = np.inf if ps is None or qs is None else np.array(entropy(ps, qs), dtype=dtype)
    start, end = bounds[int(np.argmin(divergence))]
    low, high = edges[start], edges[end]
    min_value, max_value = histogram[2], histogram[3]
    return (min_value if low < min_value else low, max_value if high > max_value else high)
