from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from onnxruntime.quantization import CalibrationMethod, create_calibrator

from sr_deploy.export.calibration import calibration_set
from sr_deploy.export.entropy import entropy_threshold
from sr_deploy.export.qdq import _Reader


def test_thresholds_are_exactly_onnx_runtimes(trained_tiny_onnx: Path, tmp_path: Path) -> None:
    # real activation histograms of a trained model (an odd bin count: the zero bin is not centred on an edge)
    with contextlib.redirect_stdout(io.StringIO()):
        calibrator = create_calibrator(
            trained_tiny_onnx,
            ["Conv", "Add"],
            augmented_model_path=str(tmp_path / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"symmetric": False, "num_bins": 515, "num_quantized_bins": 128},
        )
        calibrator.collect_data(_Reader(calibration_set(None, 4, num_images=1), "lr"))
        collector = calibrator.collector
        histograms = collector.histogram_dict
        assert len(histograms) >= 10
        for tensor, histogram in histograms.items():
            expected = collector.get_entropy_threshold(histogram, 128)
            ours = entropy_threshold(histogram, 128)
            assert (ours[0], ours[1]) == (expected[0], expected[1]), tensor
            assert ours[0].dtype == expected[0].dtype == np.float32


def test_counts_must_be_integers() -> None:
    edges = np.linspace(-1, 1, 257, dtype=np.float32)
    histogram = (np.ones(256), edges, np.float32(-1), np.float32(1))
    with pytest.raises(TypeError, match="integers"):
        entropy_threshold(histogram, 128)
    counts = np.zeros(256, dtype=np.int64)
    counts[100:156] = 1000
    low, high = entropy_threshold((counts, edges, np.float32(-0.2), np.float32(0.2)), 128)
    assert -0.2 <= low < 0 < high <= 0.2  # clamped to the observed extremes
