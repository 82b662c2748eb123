"""The TensorRT build path up to where TensorRT itself is needed, on real ONNX files and real locks.

On a machine without TensorRT or a GPU (CI) the build must stop with a plain BackendUnavailable
after validating everything it can; on a GPU machine with TensorRT those tests are skipped here and
the real build runs in benchmarks/gpu_check.py.
"""

from __future__ import annotations

import threading
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from sr_deploy.backends.base import BackendUnavailable
from sr_deploy.backends.trt_profiles import Profile, ProfileError
from sr_deploy.cli import app
from sr_deploy.export.tensorrt import build_engine, update_file
from sr_deploy.hardware import require_tensorrt
from tests.helpers import nearest_onnx


def tensorrt_missing() -> bool:
    try:
        require_tensorrt(builder=True)
    except BackendUnavailable:
        return True
    return False


needs_no_tensorrt = pytest.mark.skipif(not tensorrt_missing(), reason="TensorRT and a GPU are present here")


def test_profiles_are_validated_against_the_onnx_descriptor_before_tensorrt(tmp_path: Path) -> None:
    onnx_path = nearest_onnx(tmp_path / "m.onnx")
    odd = [Profile.parse("1x3x32x32:1x3x63x64:1x3x128x128")]
    with pytest.raises(ProfileError, match="not a multiple of 2"):
        build_engine(onnx_path, tmp_path / "m.engine", profiles=odd)
    with pytest.raises(ProfileError, match="not a multiple of 2"):
        build_engine(onnx_path, tmp_path / "m.engine", opt_shape=(1, 3, 63, 64))
    with pytest.raises(ProfileError, match="2\\*\\*31"):
        build_engine(onnx_path, tmp_path / "m.engine", max_shape=(32, 3, 1080, 1920))
    with pytest.raises(ValueError, match="exactly one of"):
        build_engine(onnx_path, None, profiles=odd)
    assert not (tmp_path / "m.engine").exists()


def test_non_sr_deploy_onnx_is_refused_with_its_name(tmp_path: Path) -> None:
    path = nearest_onnx(tmp_path / "plain.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="plain.onnx was not written by sr-deploy"):
        build_engine(path, tmp_path / "m.engine", profiles=[Profile.parse("1x3x32x32")])


@needs_no_tensorrt
def test_build_without_tensorrt_says_so_plainly(tmp_path: Path) -> None:
    onnx_path = nearest_onnx(tmp_path / "m.onnx")
    with pytest.raises(BackendUnavailable, match="^TensorRT is not available: "):
        build_engine(onnx_path, tmp_path / "m.engine", profiles=[Profile.parse("1x3x32x32")])
    assert not (tmp_path / "m.engine").exists()


@needs_no_tensorrt
def test_cli_build_reports_unavailable_tensorrt_and_bad_profiles(tmp_path: Path) -> None:
    onnx_path = nearest_onnx(tmp_path / "m.onnx")
    runner = CliRunner()
    result = runner.invoke(app, ["build", str(onnx_path), "-o", str(tmp_path / "m.engine"), "--max", "2x3x256x256"])
    assert result.exit_code == 2 and "TensorRT is not available" in result.output
    result = runner.invoke(
        app, ["build", str(onnx_path), "-o", str(tmp_path / "m.engine"), "--min", "1x3x64x64", "--opt", "1x3x32x32"]
    )
    assert result.exit_code == 2 and "min > opt" in result.output
    result = runner.invoke(app, ["build", str(onnx_path), "-o", str(tmp_path / "m.engine"), "--opt-level", "9"])
    assert result.exit_code == 2 and "0..5" in result.output


def test_update_file_merges_concurrent_writers_without_losing_any(tmp_path: Path) -> None:
    """The timing-cache update: each writer merges into what is on disk at that moment."""
    path = tmp_path / "timing.cache"

    def add(tag: bytes) -> None:
        for _ in range(5):
            update_file(path, lambda cur: (cur or b"") + tag)

    threads = [threading.Thread(target=add, args=(bytes([65 + i]),)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = path.read_bytes()
    assert sorted(data) == sorted(b"ABCDEF" * 5)


def test_update_file_leaves_the_old_file_when_the_merge_fails(tmp_path: Path) -> None:
    path = tmp_path / "timing.cache"
    update_file(path, lambda cur: b"v1")

    def boom(cur: bytes | None) -> bytes:
        raise RuntimeError("merge failed")

    with pytest.raises(RuntimeError):
        update_file(path, boom)
    assert path.read_bytes() == b"v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timing.cache", "timing.cache.lock"]
