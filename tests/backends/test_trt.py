"""TensorRT runtime logic that runs without TensorRT: availability, load-order checks, dtype/shape helpers;
and every Runtime / ICudaEngine / IExecutionContext member the runtime uses exists in TensorRT 11.

The TensorRT 11 lean runtime (PyPI tensorrt-lean-cu13, installed by tests/typecheck_tensorrt.sh into
.stubs/) imports without a GPU; its classes are inspected, never used (deserialising without a GPU
would crash). The members used are found as the attribute names in sr_deploy/backends/trt.py that
TensorRT 10's stubs list for those classes.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import sr_deploy.backends.trt as backend
from sr_deploy.backends.base import BackendUnavailable
from sr_deploy.backends.trt import TrtEngine, TrtUpscaler, dims4, numpy_dtype, tensorrt_aligned
from sr_deploy.backends.trt_metadata import EngineMetadataError
from sr_deploy.hardware import require_tensorrt

REPO = Path(__file__).resolve().parents[2]
STUBS = REPO / ".stubs" / "trt10-10.13.0.35.1"
LEAN = REPO / ".stubs" / "trt11-lean-11.4.0.106" / "pkgs"
STUB = STUBS / "tensorrt_bindings" / "tensorrt.pyi"
CLASSES = ("Runtime", "ICudaEngine", "IExecutionContext")


def tensorrt_usable() -> bool:
    try:
        require_tensorrt()
    except BackendUnavailable:
        return False
    return True


@pytest.mark.skipif(tensorrt_usable(), reason="TensorRT and a GPU are present here")
def test_require_tensorrt_says_why_not() -> None:
    with pytest.raises(BackendUnavailable, match="^TensorRT is not available: "):
        require_tensorrt(builder=True)


@pytest.mark.skipif(not (STUBS / "tensorrt").is_dir(), reason="run tests/typecheck_tensorrt.sh to install the stubs")
def test_an_importable_stub_package_is_not_tensorrt() -> None:
    """tensorrt-stubs makes `import tensorrt` succeed; availability must still say no."""
    code = (
        "import tensorrt\n"
        "from sr_deploy.hardware import require_tensorrt\n"
        "from sr_deploy.backends.base import BackendUnavailable\n"
        "try:\n    require_tensorrt(builder=True)\n"
        "except BackendUnavailable as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(STUBS)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "has no Builder (a stubs-only" in out


def test_engine_file_and_sidecar_are_checked_first(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.engine does not exist"):
        TrtEngine(tmp_path / "missing.engine")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not deserialised without a sidecar")
    with pytest.raises(EngineMetadataError, match="m.engine.json is missing"):
        TrtUpscaler(engine)


def test_numpy_dtype_and_dims4() -> None:
    assert numpy_dtype("FLOAT") == np.float32 and numpy_dtype("HALF") == np.float16 and numpy_dtype("INT8") == np.int8
    with pytest.raises(ValueError, match="BF16 has no numpy equivalent"):
        numpy_dtype("BF16")
    assert dims4((1, 3, np.int64(8), 8)) == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="N x C x H x W"):
        dims4((3, 8, 8))


def test_only_256_byte_aligned_device_pointers_go_to_tensorrt_directly() -> None:
    # setTensorAddress: "The pointer must have at least 256-byte alignment" (cudaMalloc gives that; a view
    # such as batch[1:] of a 1x3x5x5 float32 tensor starts 300 bytes in and must be copied through)
    base = 0x7F0000000000
    assert tensorrt_aligned(base, base + 256 * 7)
    assert not tensorrt_aligned(base, base + 3 * 5 * 5 * 4)
    assert not tensorrt_aligned(base + 4)


@pytest.fixture(scope="module")
def lean() -> ModuleType:
    if not LEAN.is_dir() or not STUB.is_file():
        pytest.skip("run tests/typecheck_tensorrt.sh to install the TensorRT stubs and lean runtime into .stubs/")
    sys.path.insert(0, str(LEAN))
    try:
        import tensorrt_lean
    finally:
        sys.path.remove(str(LEAN))
    return tensorrt_lean


def members_10() -> dict[str, set[str]]:
    tree = ast.parse(STUB.read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in CLASSES:
            found[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)} | {
                n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return found


def used_attributes() -> set[str]:
    tree = ast.parse(Path(backend.__file__).read_text())
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def test_runtime_members_exist_in_tensorrt_11(lean: ModuleType) -> None:
    assert lean.__version__.startswith("11.")
    used, members = used_attributes(), members_10()
    checked = {cls: used & members[cls] for cls in CLASSES}
    assert {"deserialize_cuda_engine", "engine_host_code_allowed"} <= checked["Runtime"]
    assert {"get_tensor_profile_shape", "num_io_tensors", "create_execution_context"} <= checked["ICudaEngine"]
    assert {"set_input_shape", "set_tensor_address", "execute_async_v3"} <= checked["IExecutionContext"]
    missing = {cls: sorted(n for n in names if not hasattr(getattr(lean, cls), n)) for cls, names in checked.items()}
    assert missing == {cls: [] for cls in CLASSES}


def test_the_check_would_catch_a_member_removed_in_11(lean: ModuleType) -> None:
    """`get_device_memory_size_for_profile` (TensorRT 10) is gone from 11: it would be reported."""
    assert "get_device_memory_size_for_profile" in members_10()["ICudaEngine"]
    assert not hasattr(lean.ICudaEngine, "get_device_memory_size_for_profile")
    assert hasattr(lean.ICudaEngine, "get_device_memory_size_for_profile_v2")
