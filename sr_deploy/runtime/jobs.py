"""Upscaling many files (``sr-deploy upscale``): inputs -> output paths, then one file at a time.

Other kinds of files (videos) join through two callables, so this module needs nothing of theirs: an
``accept`` test that picks them out of folders and patterns, and a ``process`` handler that upscales them.

Inputs are files, folders (their images, by suffix, sorted) and glob patterns (``**`` recursive;
matching images). The output is a folder (``OUT/<input name>``, same format as the input), or a
file name when there is exactly one input (an output ending in a path separator is always a folder; one input
file with an output that does not exist and ends in a suffix that is neither an image's nor a video's is refused,
not taken for a new folder).
A bad, unreadable or too large file (or any error while processing it) is reported and skipped and
the rest are processed; an input that is a symlink loop is reported; an existing output is left alone
unless ``overwrite``; outputs are written atomically, so an interrupted job never leaves a
half-written image, and the temporary files a killed job left behind are removed by the next one.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sr_deploy.artifacts import remove_stale_temp_files
from sr_deploy.backends.base import Upscaler
from sr_deploy.data.image_io import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, list_images
from sr_deploy.runtime.images import upscale_file

_GLOB_CHARS = "*?["
#: A local path or a URI (text): what :func:`pair_outputs` pairs.
P = TypeVar("P", Path, str)


@dataclass(frozen=True)
class Outcome:
    """What happened to one input: ``status`` is ``written``, ``exists`` (left alone) or ``failed``."""

    source: Path
    destination: Path | None
    status: str
    message: str = ""


@dataclass(frozen=True)
class JobPlan:
    """``pairs``: (input, output) to process; ``problems``: inputs that failed before processing."""

    pairs: tuple[tuple[Path, Path], ...]
    problems: tuple[Outcome, ...]


def _is_symlink_loop(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def resolve_path(path: Path) -> Path:
    """``path.resolve()``, or the absolute path where resolving fails (a symlink loop)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _loop_problem(path: Path) -> Outcome:
    return Outcome(path, None, "failed", f"{path} is a symlink loop")


def _wanted(path: Path, accept: Callable[[Path], bool] | None) -> bool:
    """An image by its suffix, or a file ``accept`` takes (e.g. a video, by probing)."""
    return path.suffix.lower() in IMAGE_SUFFIXES or (accept is not None and path.is_file() and accept(path))


def expand_inputs(inputs: Sequence[str], accept: Callable[[Path], bool] | None = None
                  ) -> tuple[list[Path], list[Outcome]]:
    """Files, folders and glob patterns -> image files (each once, in order) and inputs that match
    nothing or are symlink loops. ``accept``: folders and patterns also yield the other files it takes
    (the CLI passes :func:`sr_deploy.video.is_video`, which probes the file)."""
    kinds = "images" if accept is None else "images or videos"
    found: list[Path] = []
    problems: list[Outcome] = []
    for text in inputs:
        p = Path(text).expanduser()
        if _is_symlink_loop(p):
            problems.append(_loop_problem(p))
            continue
        if p.is_dir():
            files = list_images(p) if accept is None else [
                q for q in sorted(p.iterdir()) if q.is_file() and _wanted(q, accept)]
            problems.extend(_loop_problem(q) for q in sorted(p.iterdir())
                            if q.suffix.lower() in IMAGE_SUFFIXES and q.is_symlink() and _is_symlink_loop(q))
            if not files:
                problems.append(Outcome(p, None, "failed", f"folder {p} contains no {kinds}"))
        elif p.exists() or not any(c in text for c in _GLOB_CHARS):
            files = [p]  # a missing file is reported when it is read
        else:
            matches = sorted(Path(m) for m in glob.glob(str(p), recursive=True))
            files = [m for m in matches if m.is_file() and _wanted(m, accept)]
            if not files:
                problems.append(Outcome(p, None, "failed", f"pattern {text!r} matches no {kinds}"))
        found.extend(files)
    seen: set[Path] = set()
    unique: list[Path] = []
    for f in found:
        if resolve_path(f) not in seen:
            seen.add(resolve_path(f))
            unique.append(f)
    return unique, problems


def pair_outputs(sources: Sequence[P], output: P, single: bool, name_in: Callable[[P, P], P],
                 key: Callable[[P], Hashable]) -> tuple[list[tuple[P, P]], list[tuple[P, P, str]]]:
    """The rule pairing inputs with outputs, for local paths (:func:`plan_job`) and URIs alike: each source
    (once, by ``key``) gets ``output`` itself when ``single`` (a file name; ValueError for more than one
    source), else ``name_in(output, source)`` (the folder's ``<input name>``). Paths are compared by ``key``
    (:func:`resolve_path` for local paths): an output that is one of the inputs, or that an earlier source
    already claimed, is refused. Returns the (source, output) pairs and the refused (source, output, message)."""
    originals: dict[Hashable, P] = {}
    for src in sources:
        originals.setdefault(key(src), src)
    if single and len(originals) > 1:
        raise ValueError(f"-o {output} names one image file but {len(originals)} inputs were given: pass a folder")
    pairs: list[tuple[P, P]] = []
    refused: list[tuple[P, P, str]] = []
    claimed: dict[Hashable, P] = {}
    for src in originals.values():
        dst = output if single else name_in(output, src)
        dst_key = key(dst)
        if dst_key in originals:
            refused.append((src, dst, f"the output would replace the input {originals[dst_key]}; choose another -o"))
        elif dst_key in claimed:
            refused.append((src, dst, f"{claimed[dst_key]} has the same output name {dst}"))
        else:
            claimed[dst_key] = src
            pairs.append((src, dst))
    return pairs, refused


def plan_job(inputs: Sequence[str], output: str | Path, accept: Callable[[Path], bool] | None = None,
             file_suffixes: Sequence[str] = ()) -> JobPlan:
    """Pair every input image with its output path (see the module docstring for the rules).

    ``accept``: see :func:`expand_inputs`; ``file_suffixes``: more output suffixes (besides the image
    ones) that make ``output`` one file rather than a folder (the CLI passes the video containers'). Raises
    ValueError for one input file and an output with an unknown suffix (module docstring)."""
    sources, problems = expand_inputs(inputs, accept)
    out = Path(output).expanduser()
    names_folder = str(output).endswith(("/", os.sep)) or out.is_dir()
    known = (*IMAGE_SUFFIXES, *file_suffixes)
    single_file = not names_folder and out.suffix.lower() in known
    if (not names_folder and not single_file and out.suffix and not out.exists() and len(inputs) == 1
            and Path(inputs[0]).is_file()):
        raise ValueError(f"{output}: {out.suffix!r} is not a suffix sr-deploy writes ({', '.join(sorted(known))}); "
                         f"to write into a folder of that name, end it with {os.sep!r}")
    pairs, refused = pair_outputs(sources, out, single_file, lambda folder, src: folder / src.name, resolve_path)
    problems.extend(Outcome(src, dst, "failed", message) for src, dst, message in refused)
    return JobPlan(tuple(pairs), tuple(problems))


def run_job(
    upscaler: Upscaler,
    plan: JobPlan,
    tile: int | None = None,
    memory_budget: int | None = None,
    overwrite: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    process: Callable[[Path, Path], str | None] | None = None,
    remove_stale: bool = True,
) -> list[Outcome]:
    """Upscale every pair of ``plan``; returns the plan's problems followed by one outcome per pair.

    ``process(source, destination)``: a handler tried first for each pair: it writes the output and
    returns the outcome's message, or returns None for a file it does not handle, which is then upscaled
    as an image (the CLI passes one for videos; its errors count like the image path's).

    ``on_outcome`` is called after each pair (for a progress display). Unreadable inputs, inputs over
    ``max_pixels`` (see :func:`~sr_deploy.runtime.images.upscale_file`), outputs that cannot be written
    and any other error while processing one file (MemoryError included) are ``failed`` outcomes, not
    exceptions. Temporary files older than an hour in the output folders (left by a killed job) are
    removed first, unless ``remove_stale`` is False (a caller that runs one plan in many parts, like the
    cluster job, removes them once itself).
    """
    if remove_stale:
        for folder in sorted({dst.parent for _, dst in plan.pairs}):
            remove_stale_temp_files(folder)
    outcomes = list(plan.problems)
    for src, dst in plan.pairs:
        if dst.exists() and not overwrite:
            outcome = Outcome(src, dst, "exists", f"{dst} exists; pass --overwrite to replace it")
        else:
            try:
                message = None if process is None else process(src, dst)
                if message is None:
                    width, height = upscale_file(upscaler, src, dst, tile, memory_budget, max_pixels=max_pixels)
                    message = f"{width}x{height}"
                outcome = Outcome(src, dst, "written", message)
            except (ValueError, OSError) as exc:
                outcome = Outcome(src, dst, "failed", str(exc))
            except Exception as exc:  # noqa: BLE001 - one file never sinks the job (MemoryError included)
                cause = str(exc).strip().splitlines()
                outcome = Outcome(src, dst, "failed", f"{src}: {type(exc).__name__}" + (f": {cause[0]}" if cause
                                                                                           else ""))
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
