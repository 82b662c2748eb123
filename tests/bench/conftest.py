"""Fixtures of the bench tests: a tiny random model, its fp32 ONNX export, and one small bench run."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_deploy.bench.config import BenchConfig
from sr_deploy.export.onnx import export_onnx
from tests.helpers import made_once, save_tiny_model

#: Smallest useful bench settings: one size, batch 1 and 2, three timed runs, one image.
SMALL_BENCH = {"sizes": ((16, 16),), "batches": (1, 2), "max_batch_pixels": 2 * 16 * 16, "warmup": 1,
               "repeats": 3, "max_attempts": 1, "budget_s": 1.0, "max_images": 1,
               "tiling_sizes": ((24, 40),), "tiling_repeats": 1}


@pytest.fixture(scope="session")
def random_tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tests.helpers.save_tiny_model`: a random SRResNet(8 features, 1 block) x4."""
    return save_tiny_model(tmp_path_factory.mktemp("bench-tiny") / "tiny.safetensors")


@pytest.fixture(scope="session")
def random_tiny_onnx(random_tiny_weights: Path) -> Path:
    return export_onnx(random_tiny_weights, random_tiny_weights.with_suffix(".fp32.onnx")).path


@pytest.fixture(scope="session")
def bench_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder of the tiny model (its own copy of the weights and fp32 ONNX): torch variants, ORT fp32 and
    TensorRT (not available here); made once per run, shared by the xdist workers (:func:`tests.helpers.made_once`)."""
    from sr_deploy.bench.run import run_bench

    def make(folder: Path) -> Path:
        weights = save_tiny_model(folder / "tiny.safetensors")
        onnx = export_onnx(weights, weights.with_suffix(".fp32.onnx")).path
        config = BenchConfig(model=str(weights), onnx=(str(onnx),), **SMALL_BENCH)
        run_bench(config, folder / "results", log=lambda _m: None)
        return folder / "results"

    return made_once(tmp_path_factory, "bench-results", make)
