"""Files a cluster job reads and writes: local paths, or URIs of any filesystem pyarrow reaches
(``s3://``, ``gs://``, ``abfs://``, ``hdfs://``, ``file://``; credentials as the user configured them for pyarrow).

A URI input is staged into a private local folder under its own name before it is read (the readers and their
checks work on files), and a URI output is written locally and then uploaded under a temporary name
(``.NAME.xxxxxxxx.tmp``, as :func:`sr_deploy.artifacts.atomic_open` names them) and moved into place, so
a reader never sees half an image (on object stores the upload is one object written whole).
"""

from __future__ import annotations

import secrets
from pathlib import Path, PurePosixPath

from sr_deploy.data.image_io import IMAGE_SUFFIXES


def is_uri(text: str) -> bool:
    """Whether ``text`` names a file through a filesystem scheme (``s3://...``, ``file:///...``)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier()


def _open(uri: str):  # type: ignore[no-untyped-def]  # pyarrow ships no type hints
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)


def join(folder: str, name: str) -> str:
    """``folder/name`` for a URI folder."""
    return f"{folder.rstrip('/')}/{name}"


def name_of(uri: str) -> str:
    """The file name at the end of a URI."""
    return PurePosixPath(uri.rstrip("/")).name


def list_uri(uri: str) -> tuple[list[str], str | None]:
    """The image URIs a URI input names (a file: itself; a folder: its images by suffix, sorted, not below
    it) and a problem (None when there is none): nothing there, or a folder without images."""
    from pyarrow import fs

    filesystem, path = _open(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        return [], f"{uri}: no such file or folder"
    if info.type != fs.FileType.Directory:
        return [uri], None
    base = uri.rstrip("/")
    found = sorted(join(base, PurePosixPath(entry.path).name)
                   for entry in filesystem.get_file_info(fs.FileSelector(path, recursive=False))
                   if entry.type == fs.FileType.File and PurePosixPath(entry.path).suffix.lower() in IMAGE_SUFFIXES)
    return found, None if found else f"folder {uri} contains no images"


def is_folder_uri(uri: str) -> bool:
    """Whether the URI output names a folder (it ends in ``/``, exists as one, or has no image suffix)."""
    from pyarrow import fs

    if uri.endswith("/") or PurePosixPath(uri).suffix.lower() not in IMAGE_SUFFIXES:
        return True
    filesystem, path = _open(uri)
    return bool(filesystem.get_file_info(path).type == fs.FileType.Directory)


def exists(uri: str) -> bool:
    """Whether a file exists at ``uri``."""
    from pyarrow import fs

    filesystem, path = _open(uri)
    return bool(filesystem.get_file_info(path).type != fs.FileType.NotFound)


def download(uri: str, folder: Path) -> Path:
    """Copy the file at ``uri`` to ``folder/<its name>``; returns the local path (OSError names the URI)."""
    local = folder / name_of(uri)
    filesystem, path = _open(uri)
    try:
        with filesystem.open_input_stream(path) as src, open(local, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
    except OSError as exc:
        raise OSError(f"cannot read {uri}: {exc}") from None
    return local


def upload(local: Path, uri: str) -> None:
    """Copy ``local`` to ``uri`` under a temporary name, then move it into place (OSError names the URI)."""
    filesystem, path = _open(uri)
    parent = PurePosixPath(path).parent
    temp = str(parent / f".{PurePosixPath(path).name}.{secrets.token_hex(4)}.tmp")
    try:
        filesystem.create_dir(str(parent), recursive=True)
        with open(local, "rb") as src, filesystem.open_output_stream(temp) as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        filesystem.move(temp, path)
    except OSError as exc:
        try:
            filesystem.delete_file(temp)
        except OSError:
            pass
        raise OSError(f"cannot write {uri}: {exc}") from None
