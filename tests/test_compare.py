"""The one comparator: metrics and pass/fail rules on real image outputs (bicubic x4 of a real photo)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sr_deploy.compare import TOLERANCES, Tolerance, compare, psnr_unit, tolerance_for
from sr_deploy.data import embedded_images, make_eval_pair, to_float_rgb
from sr_deploy.data.image_io import hwc_to_nchw
from sr_deploy.runtime import load


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """Bicubic x4 of a 24 x 24 LR crop of a real photo: ``1 x 3 x 96 x 96`` float32."""
    lr = to_float_rgb(make_eval_pair(embedded_images("eval")[0], 4).lr)[40:64, 40:64]
    return load("bicubic", scale=4).run(hwc_to_nchw(lr))


def test_identical_output_passes_every_precision(reference: np.ndarray) -> None:
    for precision in TOLERANCES:
        m = compare([reference.copy()], [reference], tolerance_for(precision))
        assert m.passed and m.max_abs == 0.0 and m.mean_abs == 0.0 and m.p99_abs == 0.0
        assert math.isinf(m.psnr_db)


def test_metrics_match_their_definitions(reference: np.ndarray) -> None:
    noise = np.random.default_rng(0).uniform(-1e-3, 1e-3, reference.shape).astype(np.float32)
    m = compare([reference + noise], [reference], tolerance_for("fp16"))
    err = np.abs((reference + noise).astype(np.float64) - reference)
    assert m.max_abs == pytest.approx(err.max())
    assert m.mean_abs == pytest.approx(err.mean())
    assert m.p99_abs == pytest.approx(np.percentile(err, 99))
    assert m.psnr_db == pytest.approx(10 * np.log10(1 / np.mean(err**2)))
    assert m.psnr_db == pytest.approx(psnr_unit(reference + noise, reference))


def test_small_noise_fails_fp32_but_passes_fp16(reference: np.ndarray) -> None:
    noise = np.random.default_rng(1).uniform(-1e-3, 1e-3, reference.shape).astype(np.float32)
    out = reference + noise
    fp32 = compare([out], [reference], tolerance_for("fp32"))
    fp16 = compare([out], [reference], tolerance_for("fp16"))
    assert not fp32.passed and fp32.psnr_db < 100.0  # fp32 must reach 100 dB
    assert fp16.passed


def test_rare_outliers_pass_the_p99_rule_but_not_the_max_rule(reference: np.ndarray) -> None:
    out = reference.copy().ravel()
    idx = np.random.default_rng(2).choice(out.size, out.size // 500, replace=False)  # 0.2 % of elements
    out[idx] += 0.1
    out = out.reshape(reference.shape)
    assert compare([out], [reference], tolerance_for("int8")).passed  # stat p99
    assert not compare([out], [reference], tolerance_for("fp16")).passed  # stat max


def test_large_error_fails_int8(reference: np.ndarray) -> None:
    out = reference + 0.1
    assert not compare([out], [reference], tolerance_for("int8")).passed


def test_non_finite_output_fails(reference: np.ndarray) -> None:
    out = reference.copy()
    out[0, 0, 0, 0] = np.nan
    m = compare([out], [reference], tolerance_for("int8"))
    assert not m.passed and not m.finite and math.isinf(m.max_abs)


def test_compare_pools_batches_and_checks_shapes(reference: np.ndarray) -> None:
    half = reference[:, :, :48]
    m = compare([reference, half + 1e-3], [reference, half], tolerance_for("fp32"))
    assert not m.passed and m.max_abs == pytest.approx(1e-3, rel=1e-3)
    with pytest.raises(ValueError, match="differs from the reference"):
        compare([reference], [half], tolerance_for("fp32"))
    with pytest.raises(ValueError, match="no parity tolerance"):
        tolerance_for("int4")


def test_psnr_is_on_the_unit_scale_and_the_floor_applies_to_every_batch(reference: np.ndarray) -> None:
    m = compare([reference + np.float32(0.01)], [reference], Tolerance(min_psnr_db=39.0))
    assert m.psnr_db == pytest.approx(20 * np.log10(1 / 0.01), abs=0.01)  # 40 dB, not 40 + 48 dB
    assert m.passed and m.rows[0]["shape"] == list(reference.shape)
    # pooled the two batches reach 39 dB, but the second alone does not: the gate fails
    noisy = reference + np.float32(0.013)  # 37.7 dB alone, 40.7 dB pooled with an exact batch
    pooled = compare([reference.copy(), noisy], [reference, reference], Tolerance(min_psnr_db=39.0))
    assert pooled.psnr_db > 39.0 and not pooled.passed
    assert "PSNR >= 39 dB" in pooled.summary() and pooled.to_dict()["passed"] is False
