"""Fixtures of the export tests: a tiny SRResNet actually trained on real photos, and its fp32 ONNX export.

Quantization sensitivity only means something for a trained network (random weights put every
layer near zero), so :func:`tests.helpers.train_tiny_model` fits one once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_deploy.export.onnx import export_onnx
from tests.helpers import train_tiny_model


@pytest.fixture(scope="session")
def trained_tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny-x4.safetensors`` (+ .json): :data:`tests.helpers.TINY_TRAINED` after 300 Adam steps."""
    return train_tiny_model(tmp_path_factory.mktemp("trained-tiny") / "tiny-x4.safetensors")


@pytest.fixture(scope="session")
def trained_tiny_onnx(trained_tiny_weights: Path) -> Path:
    """The tiny trained model exported to fp32 ONNX (dynamic batch/height/width)."""
    return export_onnx(trained_tiny_weights, trained_tiny_weights.with_suffix(".onnx")).path
