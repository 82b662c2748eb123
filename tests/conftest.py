"""Shared fixtures. Keep this small: only what several test modules need."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sr_deploy.models import save_weights
from tests.helpers import SMALL, random_srresnet

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The shared real-image datasets folder (``Set5/HR``, ``Set14/HR``, ``train/T91`` ...).

    ``$SR_DEPLOY_DATASETS`` when set, else ``shared/datasets`` beside the repository. Tests that
    use it are skipped, with the reason, when the folder is absent (the suite must pass without it).
    """
    env = os.environ.get("SR_DEPLOY_DATASETS")
    folder = Path(env) if env else (REPO_ROOT / "../shared/datasets").resolve()
    if not folder.is_dir():
        source = "$SR_DEPLOY_DATASETS" if env else "the default location"
        pytest.skip(f"real-image datasets not found at {folder} ({source}); set SR_DEPLOY_DATASETS to run")
    return folder


@pytest.fixture(scope="session")
def small_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small-x4.safetensors`` (+ .json) of :func:`random_srresnet`."""
    return save_weights(random_srresnet(), SMALL, tmp_path_factory.mktemp("small") / "small-x4.safetensors")


@pytest.fixture(scope="session")
def small_onnx(small_weights: Path) -> Path:
    """The same weights exported to fp32 ONNX with sr-deploy metadata (``export_onnx``: parity-gated)."""
    from sr_deploy.export.onnx import export_onnx

    return export_onnx(small_weights, small_weights.with_suffix(".onnx")).path


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Conversions, compiled models and tuning results of the tests go to a temporary cache, never to the
    user's (``$SR_DEPLOY_CACHE``, inherited by subprocesses)."""
    cache = tmp_path_factory.mktemp("sr-deploy-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("SR_DEPLOY_CACHE", str(cache))
    yield cache
    patch.undo()
