"""Every Runtime / ICudaEngine / IExecutionContext member the TensorRT runtime uses exists in TensorRT 11.

The TensorRT 11 lean runtime (PyPI tensorrt-lean-cu13, installed by tests/typecheck_tensorrt.sh into
.stubs/) imports without a GPU; its classes are inspected, never used (deserialising without a GPU
would crash). The members used are found as the attribute names in trt_backend.py that TensorRT
10's stubs list for those classes.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import ModuleType

import pytest

import sr_deploy.backends.trt as backend

REPO = Path(__file__).resolve().parents[2]
LEAN = REPO / ".stubs" / "trt11-lean-11.4.0.106" / "pkgs"
STUB = REPO / ".stubs" / "trt10-10.13.0.35.1" / "tensorrt_bindings" / "tensorrt.pyi"
CLASSES = ("Runtime", "ICudaEngine", "IExecutionContext")


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
