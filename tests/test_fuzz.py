"""Property-based fuzzing of the parsers of untrusted files (hypothesis, derandomized: CI is reproducible).

Each parser gets random bytes and truncated or mutated real files; the only allowed outcomes are a
correct result or the project's own error type with a message naming the file. Examples per test:
``$SR_DEPLOY_FUZZ_EXAMPLES`` (default 60: all of them together take seconds).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sr_deploy.backends import onnx_metadata
from sr_deploy.backends.trt_metadata import BuildOptions, EngineMetadata, EngineMetadataError, read_metadata
from sr_deploy.backends.trt_profiles import Profile
from sr_deploy.data.datasets import embedded_images
from sr_deploy.data.image_io import ImageReadError, read_image, write_image
from sr_deploy.errors import ModelFileError
from sr_deploy.hardware import GpuInfo
from sr_deploy.models.weights import WeightsError, load_weights
from tests.helpers import TINY_RANDOM, nearest_onnx, save_tiny_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

EXAMPLES = int(os.environ.get("SR_DEPLOY_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

Seed = tuple[str, bytes]  # (file suffix, contents)


def _truncated(seed: Seed) -> st.SearchStrategy[Seed]:
    return st.integers(0, max(len(seed[1]) - 1, 0)).map(lambda n: (seed[0], seed[1][:n]))


def _mutated(seed: Seed, within: int) -> st.SearchStrategy[Seed]:
    """Up to 8 bytes of the first ``within`` bytes of the seed replaced."""
    suffix, data = seed
    positions = st.integers(0, max(min(within, len(data)) - 1, 0))

    def apply(changes: list[tuple[int, int]]) -> Seed:
        out = bytearray(data)
        for pos, value in changes:
            if pos < len(out):
                out[pos] = value
        return suffix, bytes(out)

    return st.lists(st.tuples(positions, st.integers(0, 255)), min_size=1, max_size=8).map(apply)


def hostile(seeds: list[Seed], header: int = 64) -> st.SearchStrategy[Seed]:
    """Random bytes under a seed's suffix, truncations, header mutations and mutations anywhere."""
    seed = st.sampled_from(seeds)
    suffixes = st.sampled_from(sorted({s for s, _ in seeds}))
    return st.one_of(
        st.tuples(suffixes, st.binary(max_size=1024)),
        seed.flatmap(_truncated),
        seed.flatmap(lambda s: _mutated(s, header)),
        seed.flatmap(lambda s: _mutated(s, len(s[1]))),
    )


def _outcome(call: Callable[[], Any], error: type[Exception], *paths: Path) -> Any:
    """``call()``'s result, or None when it raised ``error`` naming one of ``paths``; anything else fails."""
    try:
        return call()
    except error as exc:
        assert any(str(p) in str(exc) for p in paths), f"{type(exc).__name__} does not name the file: {exc}"
        return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# -- images ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_seeds(folder: Path) -> list[Seed]:
    photo = read_image(embedded_images("eval")[0])[:24, :20, :3]
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 200, np.uint8)], axis=2)
    seeds = []
    for suffix, img in [(".png", photo), (".png", rgba), (".png", photo[..., :1].astype(np.uint16) * 257),
                        (".jpg", photo), (".webp", photo), (".tif", photo), (".tif", rgba)]:
        path = folder / f"seed{len(seeds)}{suffix}"
        write_image(path, img)
        seeds.append((suffix, path.read_bytes()))
    return seeds


def test_read_image_fuzz(folder: Path, image_seeds: list[Seed]) -> None:
    @FUZZ
    @given(hostile(image_seeds))
    def check(case: Seed) -> None:
        path = folder / f"image{case[0]}"
        path.write_bytes(case[1])
        img = _outcome(lambda: read_image(path), ImageReadError, path)
        if img is not None:
            assert isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] in (1, 3, 4)
            assert img.dtype in (np.uint8, np.uint16) and min(img.shape) >= 1

    check()


# -- ONNX ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_seeds(folder: Path, small_onnx: Path) -> list[Seed]:
    tiny = nearest_onnx(folder / "nearest.onnx", precision="fp32")
    return [(".onnx", tiny.read_bytes()), (".onnx", small_onnx.read_bytes())]


def test_onnx_metadata_fuzz(folder: Path, onnx_seeds: list[Seed]) -> None:
    @FUZZ
    @given(hostile(onnx_seeds, header=256))
    def check(case: Seed) -> None:
        path = folder / "model.onnx"
        path.write_bytes(case[1])
        props = _outcome(lambda: onnx_metadata.file_props(path), ModelFileError, path)
        assert props is None or all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())
        loaded = _outcome(lambda: onnx_metadata.load_sr_onnx(path, None), ModelFileError, path)
        if loaded is not None:
            assert props is not None and onnx_metadata.DESCRIPTOR in props

    check()


# -- TensorRT engine sidecars ----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
SIDECAR = EngineMetadata(
    tensorrt_version="10.8.0.43",
    gpu=GpuInfo("NVIDIA A100-SXM4-80GB", (8, 0)),
    precision="fp16",
    onnx_sha256="ab" * 32,
    onnx_path="models/x4-fp16.onnx",
    input_name="lr",
    options=BuildOptions(profiles=(Profile.parse("1x3x32x32:1x3x256x256:4x3x720x1280"),), workspace_gb=2.0),
    descriptor=TINY_RANDOM.to_dict(),
    timing_cache="cache.timing",
    extra={"note": "fuzz"},
).to_dict()


@st.composite
def mutated_sidecar(draw: st.DrawFn) -> Any:
    """The valid sidecar with 1-3 values somewhere inside replaced by random JSON, or removed."""
    doc = copy.deepcopy(SIDECAR)
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if isinstance(node[key], dict | list) and draw(st.booleans()):
                node = node[key]
                continue
            if isinstance(node, dict) and draw(st.booleans()):
                del node[key]
            else:
                node[key] = draw(JSON)
            break
    return doc


def test_engine_sidecar_fuzz(folder: Path) -> None:
    engine = folder / "fake.engine"
    engine.write_bytes(b"not an engine")
    path = folder / "fake.engine.json"

    @FUZZ
    @given(st.one_of(JSON.map(json.dumps), mutated_sidecar().map(json.dumps), st.binary(max_size=256)))
    def check(text: str | bytes) -> None:
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        meta = _outcome(lambda: read_metadata(engine), EngineMetadataError, path)
        assert meta is None or isinstance(meta, EngineMetadata)

    check()


# -- weights ---------------------------------------------------------------------------------------


class _Payload:
    """Creates a file when unpickled: proof that untrusted data was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return open, (str(self.marker), "w")


@pytest.fixture(scope="module")
def weights_seeds(folder: Path) -> tuple[list[Seed], bytes, Path]:
    weights = save_tiny_model(folder / "seed.safetensors")
    model, desc = load_weights(weights)
    marker = folder / "UNPICKLED"
    ckpt, hostile_pt = folder / "ckpt.pt", folder / "hostile.pt"
    torch.save({"model": model.state_dict(), "descriptor": desc.to_json()}, ckpt)
    torch.save({"model": _Payload(marker), "descriptor": desc.to_json()}, hostile_pt)
    seeds = [(".safetensors", weights.read_bytes()), (".pt", ckpt.read_bytes()), (".pt", hostile_pt.read_bytes()),
             (".pt", pickle.dumps({"model": _Payload(marker), "descriptor": desc.to_json()}, protocol=2))]
    return seeds, weights.with_suffix(".json").read_bytes(), marker


def test_weights_fuzz(folder: Path, weights_seeds: tuple[list[Seed], bytes, Path]) -> None:
    seeds, sidecar, marker = weights_seeds

    @FUZZ
    @given(hostile(seeds, header=256), st.none() | st.integers(0, len(sidecar) - 1))
    def check(case: Seed, sidecar_cut: int | None) -> None:
        path = folder / f"weights{case[0]}"
        path.write_bytes(case[1])
        if case[0] == ".safetensors":  # the descriptor beside it: whole or truncated
            path.with_suffix(".json").write_bytes(sidecar[:sidecar_cut])
        result = _outcome(lambda: load_weights(path), WeightsError, path, path.with_suffix(".json"))
        assert result is None or isinstance(result[0], torch.nn.Module)
        assert not marker.exists(), f"{case} was unpickled"

    check()
