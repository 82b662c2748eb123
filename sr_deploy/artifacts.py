"""Artifact helpers shared by every stage: atomic writes, file locks, hashes and provenance metadata.

Every file the toolchain writes goes through :func:`atomic_write_bytes` (or one of its wrappers):
the data is written to a temporary file in the destination folder, flushed and fsync'ed, then
moved over the destination with :func:`os.replace`, so a reader never sees a half-written file
and a crash leaves the previous version intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import platform
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sr_deploy._version import __version__


@dataclass(frozen=True)
class WrittenFile:
    """What a step wrote, usable as the file's path: ``os.PathLike``, and ``str()`` gives the path (as
    for :class:`pathlib.Path`), so a result goes wherever a path goes (``export_int8(result, ...)``,
    ``load(result)``, ``open(result)``) and is recorded as its path."""

    path: Path

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=_TEMP_SUFFIX, dir=dest.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


_TEMP_SUFFIX = ".tmp"
#: The names :func:`atomic_open` gives its temporary files: ``.NAME.`` + mkstemp's 8 random characters + ``.tmp``.
TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX))


def remove_stale_temp_files(folder: str | os.PathLike[str], older_than_s: float = 3600.0) -> list[Path]:
    """Remove the temporary files of :func:`atomic_open` in ``folder`` (not below it) that were last
    modified more than ``older_than_s`` seconds ago: what a killed writer left behind. A younger one may
    belong to a write in progress and is kept, and so is every file whose name does not match
    :data:`TEMP_NAME`. Returns the removed paths; a missing folder or a file that cannot be removed is
    passed over."""
    deadline = time.time() - older_than_s
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        try:
            if (TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime < deadline):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + ``os.replace``)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock (POSIX ``flock``) on ``<path>.lock`` (its folder created) for the
    block: one process makes or read-modify-writes ``path`` at a time, the others wait. The lock goes with
    the process (a killed holder releases it); the ``.lock`` file stays, empty."""
    lock = Path(f"{os.fspath(path)}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def finite_or_null(obj: Any) -> Any:
    """``obj`` with every non-finite float (``inf``, ``-inf``, ``nan``) replaced by None, inside dicts,
    lists and tuples too: strict JSON has no Infinity/NaN (e.g. the PSNR of identical images is inf)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted, strict JSON to ``path`` atomically (non-finite floats
    become null, see :func:`finite_or_null`, so every parser reads it)."""
    text = json.dumps(finite_or_null(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape numerical results (missing ones are left out)."""
    import importlib.metadata as md

    versions = {"sr-deploy": __version__, "python": platform.python_version()}
    for dist in ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "numpy", "tensorrt"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[dist] = md.version(dist)
    return versions
