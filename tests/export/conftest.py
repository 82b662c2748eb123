"""Fixtures of the export tests: a tiny SRResNet actually trained on real photos, and its fp32 ONNX export.

Quantization sensitivity only means something for a trained network (random weights put every
layer near zero), so :func:`tests.helpers.train_tiny_model` fits one once per test run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_deploy.export.onnx import export_onnx
from tests.helpers import made_once, train_tiny_model


def _trained_and_exported(folder: Path) -> Path:
    weights = train_tiny_model(folder / "tiny-x4.safetensors")
    export_onnx(weights, weights.with_suffix(".onnx"))
    return weights


@pytest.fixture(scope="session")
def trained_tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny-x4.safetensors`` (+ .json): :data:`tests.helpers.TINY_TRAINED` after 300 Adam steps, and beside it
    its fp32 ONNX export; trained once per run, shared by the xdist workers (:func:`tests.helpers.made_once`)."""
    return made_once(tmp_path_factory, "trained-tiny", _trained_and_exported)


@pytest.fixture(scope="session")
def trained_tiny_onnx(trained_tiny_weights: Path) -> Path:
    """The tiny trained model exported to fp32 ONNX (dynamic batch/height/width), beside its weights."""
    return trained_tiny_weights.with_suffix(".onnx")
