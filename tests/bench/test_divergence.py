"""The divergence localiser names the first layer where an ONNX graph departs from PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sr_deploy.bench.divergence import localize_divergence, observed_modules
from sr_deploy.data import embedded_images
from sr_deploy.data.crops import lr_crops
from sr_deploy.models import load_weights
from tests.helpers import perturb_conv, save_tiny_model


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return lr_crops(embedded_images("eval"), 4, 1, 24, 20, seed=0)


def test_faithful_export_does_not_diverge(random_tiny_weights: Path, random_tiny_onnx: Path, batch: np.ndarray) -> None:
    net, _ = load_weights(random_tiny_weights)
    report = localize_divergence(random_tiny_onnx, net, batch, "fp32")
    assert report.first is None, report.summary()
    assert len(report.layers) == len(observed_modules(net))
    assert max(layer.rel_l2 for layer in report.layers) < 1e-5


@pytest.mark.parametrize("k", [2, 4])
def test_perturbed_conv_is_named(random_tiny_weights: Path, random_tiny_onnx: Path, batch: np.ndarray, tmp_path: Path,
                                 k: int) -> None:
    node = perturb_conv(random_tiny_onnx, tmp_path / "broken.onnx", k)
    net, _ = load_weights(random_tiny_weights)
    report = localize_divergence(tmp_path / "broken.onnx", net, batch, "fp32")
    first = report.first
    assert first is not None and first.index == k and first.onnx_node == node
    conv_name, watched, _ = observed_modules(net)[k]
    assert first.torch_module == watched
    assert all(layer.rel_l2 < 1e-5 for layer in report.layers[:k])
    assert conv_name in report.summary() or watched in report.summary()


def test_batchnorm_is_compared_after_folding(random_tiny_weights: Path) -> None:
    net, _ = load_weights(random_tiny_weights)
    watched = [w for _, w, _ in observed_modules(net)]
    # conv -> BN pairs are observed at the BN (the export folds BN into the conv)
    assert "blocks.0.body.1" in watched and "blocks.0.body.0" not in watched
    assert "head.0" in watched and "tail" in watched


def test_a_different_network_is_rejected(random_tiny_onnx: Path, batch: np.ndarray, tmp_path: Path) -> None:
    other = save_tiny_model(tmp_path / "other.safetensors")
    net, _ = load_weights(other)
    net.blocks = net.blocks[:0]  # drop the residual block: fewer convolutions than the graph
    with pytest.raises(ValueError, match="not the same network"):
        localize_divergence(random_tiny_onnx, net, batch)
