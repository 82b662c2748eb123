from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from sr_deploy.export.calibration import calibration_set
from sr_deploy.export.entropy import entropy_threshold
from sr_deploy.export.qdq import ENTROPY_QUANTIZED_BINS, LAYOUTS, calibrated


def test_thresholds_are_exactly_onnx_runtimes(trained_tiny_onnx: Path) -> None:
    # real activation histograms of a trained model (an odd bin count: the zero bin is not centred on an edge)
    calibrator = calibrated(trained_tiny_onnx, calibration_set(None, 4, num_images=1), LAYOUTS["ort-cpu"],
                            "entropy", bins=515)
    histograms = calibrator.collector.histogram_dict
    assert len(histograms) >= 10
    with contextlib.redirect_stdout(io.StringIO()):
        expected = calibrator.collector.compute_entropy()  # ORT's own search
    for tensor, histogram in histograms.items():
        ours = entropy_threshold(histogram, ENTROPY_QUANTIZED_BINS)
        assert (ours[0], ours[1]) == (expected[tensor][0], expected[tensor][1]), tensor
        assert ours[0].dtype == expected[tensor][0].dtype == np.float32


def test_counts_must_be_integers() -> None:
    edges = np.linspace(-1, 1, 257, dtype=np.float32)
    histogram = (np.ones(256), edges, np.float32(-1), np.float32(1))
    with pytest.raises(TypeError, match="integers"):
        entropy_threshold(histogram, 128)
    counts = np.zeros(256, dtype=np.int64)
    counts[100:156] = 1000
    low, high = entropy_threshold((counts, edges, np.float32(-0.2), np.float32(0.2)), 128)
    assert -0.2 <= low < 0 < high <= 0.2  # clamped to the observed extremes
