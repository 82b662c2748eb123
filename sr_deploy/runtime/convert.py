"""Conversion on demand: the ONNX file or TensorRT engine a route needs, made from PyTorch weights on
first use and reused afterwards (vs-mlrt's habit for engines).

Converted files live in ``<cache>/converted/`` under names derived from the weights' sha256, the
target and the sr-deploy version, so a changed weights file or a new sr-deploy gives a new file and
an unchanged one is reused without work. Each file is made by the export stage's own verified steps
(:func:`~sr_deploy.export.onnx.export_onnx`, :func:`~sr_deploy.export.fp16.export_fp16`,
:func:`~sr_deploy.export.tensorrt.build_engine`) and written atomically, so an interrupted
conversion leaves nothing half-written behind. The cache root is ``$SR_DEPLOY_CACHE``, else
``$XDG_CACHE_HOME/sr-deploy`` (``~/.cache/sr-deploy``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sr_deploy._version import __version__
from sr_deploy.artifacts import sha256_file
from sr_deploy.export.fp16 import export_fp16
from sr_deploy.export.onnx import export_onnx
from sr_deploy.export.tensorrt import build_engine

#: File precisions the conversion makes from weights (int8 needs calibration and an accuracy budget:
#: export it with ``export_int8``).
CONVERTIBLE = {"onnx": ("fp32", "fp16"), "engine": ("fp32", "fp16")}


def cache_root() -> Path:
    """``$SR_DEPLOY_CACHE``, else ``$XDG_CACHE_HOME/sr-deploy``, else ``~/.cache/sr-deploy`` (read at each call)."""
    explicit = os.environ.get("SR_DEPLOY_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sr-deploy"


def converted_path(weights: str | os.PathLike[str], kind: str, precision: str) -> Path:
    """Where the ``kind`` (``onnx`` or ``engine``) file in ``precision`` made from ``weights`` is cached."""
    if precision not in CONVERTIBLE.get(kind, ()):
        raise ValueError(f"no conversion of weights to a {precision} {kind}; converted on demand: "
                         + ", ".join(f"{k} {'/'.join(v)}" for k, v in CONVERTIBLE.items()))
    digest = sha256_file(weights)[:20]
    suffix = ".onnx" if kind == "onnx" else ".engine"
    return cache_root() / "converted" / f"{Path(weights).stem}-{digest}-{precision}-v{__version__}{suffix}"


def convert(
    weights: str | os.PathLike[str], kind: str, precision: str, log: Callable[[str], None] | None = None
) -> Path:
    """The cached ``kind`` file in ``precision`` for ``weights``, made now if it is not there yet."""
    target = converted_path(weights, kind, precision)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    note = log or (lambda _m: None)
    if kind == "engine":
        onnx_file = convert(weights, "onnx", precision, log)
        note(f"building {target.name} from {onnx_file.name} (first use; cached for next time)")
        build_engine(onnx_file, target, log=note)
        return target
    fp32 = converted_path(weights, "onnx", "fp32")
    if not fp32.is_file():
        note(f"exporting {fp32.name} from {weights} (first use; cached for next time)")
        export_onnx(weights, fp32)
    if precision == "fp16":
        note(f"converting {fp32.name} to fp16 (first use; cached for next time)")
        export_fp16(fp32, target)
    return target
