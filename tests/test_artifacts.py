"""Atomic writes, hashes and provenance metadata."""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from sr_deploy import __version__
from sr_deploy.artifacts import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    library_versions,
    locked,
    remove_stale_temp_files,
    sha256_file,
)


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_bytes_creates_parents_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "out.bin"
    atomic_write_bytes(path, b"first")
    assert path.read_bytes() == b"first"
    atomic_write_bytes(path, b"second version")
    assert path.read_bytes() == b"second version"
    assert not leftovers(path.parent)


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="crash"), atomic_open(path, "w") as fh:
        fh.write("half of the new con")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert not leftovers(tmp_path)


def test_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_open(tmp_path / "new.bin") as fh:
        fh.write(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_json(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    atomic_write_json(path, {"b": 1, "a": [1.5, "x"], "c": {"z": None, "y": True}})
    text = path.read_text()
    assert json.loads(text) == {"a": [1.5, "x"], "b": 1, "c": {"y": True, "z": None}}
    assert text.index('"a"') < text.index('"b"') < text.index('"c"') and text.endswith("\n")


def test_atomic_write_json_is_strict(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "report.json"
    drop = {"all_int8_drop": float("-inf"), "steps": [{"psnr": float("inf")}, (float("nan"), np.float64("nan"), 2.5)],
            "ok": 1.0}
    atomic_write_json(path, drop)

    def reject(constant: str) -> None:
        raise AssertionError(f"non-strict JSON constant {constant} in {path}")

    assert json.loads(path.read_text(), parse_constant=reject) == {
        "all_int8_drop": None, "ok": 1.0, "steps": [{"psnr": None}, [None, None, 2.5]]}
    assert drop["all_int8_drop"] == float("-inf")  # the caller's object is not modified


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    # FIPS 180-2 test vector
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    data = bytes(range(256)) * 5000  # larger than the chunk below: exercises the loop
    path.write_bytes(data)
    assert sha256_file(path, chunk=4096) == hashlib.sha256(data).hexdigest()


def test_library_versions() -> None:
    import numpy
    import torch

    versions = library_versions()
    assert versions["sr-deploy"] == __version__
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["python"].count(".") == 2


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644


def test_remove_stale_temp_files_only_old_own_temporaries(tmp_path: Path) -> None:
    with atomic_open(tmp_path / "image.png") as fh:  # a real temporary name, as a kill -9 would leave it
        fh.write(b"half")
        [real] = leftovers(tmp_path)
        os.link(real, tmp_path / "killed")
    os.replace(tmp_path / "killed", real)
    fresh = tmp_path / ".other.png.abcd1234.tmp"
    other = tmp_path / "mine.tmp"
    for p in (fresh, other):
        p.write_bytes(b"x")
    old = time.time() - 7200
    for p in (real, other):
        os.utime(p, (old, old))
    assert remove_stale_temp_files(tmp_path, older_than_s=3600) == [real]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["image.png", fresh.name, other.name])
    assert remove_stale_temp_files(tmp_path / "missing") == []


def _add_under_lock(path: str, times: int, start: Barrier) -> None:
    """Read-modify-write a counter file ``times`` times, each under the lock (a child process's job, begun
    when every worker is ready)."""
    start.wait()
    for _ in range(times):
        with locked(path):
            count = int(Path(path).read_text()) if Path(path).is_file() else 0
            time.sleep(0.001)  # widen the window a missing lock would lose an update in
            atomic_write_bytes(path, str(count + 1).encode())


def test_locked_serialises_read_modify_write_across_processes(tmp_path: Path) -> None:
    counter = tmp_path / "sub" / "count.txt"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(3)
    workers = [context.Process(target=_add_under_lock, args=(str(counter), 40, start)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert counter.read_text() == "120"  # no update lost
    assert (tmp_path / "sub" / "count.txt.lock").is_file()


def test_locked_is_released_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "made.bin"
    with pytest.raises(RuntimeError), locked(target):
        raise RuntimeError("failed making it")
    with open(f"{target}.lock", "a") as fh:  # another holder can take it at once
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
