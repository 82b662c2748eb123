"""Upscaling many files (``sr-deploy upscale``): inputs -> output paths, then one file at a time.

Inputs are files, folders (their images, by suffix, sorted) and glob patterns (``**`` recursive;
matching images). The output is a folder (``OUT/<input name>``, same format as the input), or a
file name when there is exactly one input. A bad or unreadable file is reported and skipped and
the rest are processed; an existing output is left alone unless ``overwrite``; outputs are
written atomically, so an interrupted job never leaves a half-written image.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sr_deploy.backends.base import Upscaler
from sr_deploy.data.image_io import IMAGE_SUFFIXES, list_images
from sr_deploy.runtime.images import upscale_file

_GLOB_CHARS = "*?["


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


def expand_inputs(inputs: Sequence[str]) -> tuple[list[Path], list[Outcome]]:
    """Files, folders and glob patterns -> image files (each once, in order) and inputs that match nothing."""
    found: list[Path] = []
    problems: list[Outcome] = []
    for text in inputs:
        p = Path(text).expanduser()
        if p.is_dir():
            files = list_images(p)
            if not files:
                problems.append(Outcome(p, None, "failed", f"folder {p} contains no images"))
        elif p.exists() or not any(c in text for c in _GLOB_CHARS):
            files = [p]  # a missing file is reported when it is read
        else:
            matches = sorted(Path(m) for m in glob.glob(str(p), recursive=True))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                problems.append(Outcome(p, None, "failed", f"pattern {text!r} matches no images"))
        found.extend(files)
    seen: set[Path] = set()
    unique: list[Path] = []
    for f in found:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique, problems


def plan_job(inputs: Sequence[str], output: str | Path) -> JobPlan:
    """Pair every input image with its output path (see the module docstring for the rules)."""
    sources, problems = expand_inputs(inputs)
    out = Path(output).expanduser()
    single_file = not out.is_dir() and out.suffix.lower() in IMAGE_SUFFIXES
    if single_file and len(sources) > 1:
        raise ValueError(f"-o {out} names one image file but {len(sources)} inputs were given: pass a folder")
    pairs: list[tuple[Path, Path]] = []
    claimed: dict[Path, Path] = {}
    originals = {src.resolve(): src for src in sources}
    for src in sources:
        dst = out if single_file else out / src.name
        key = dst.resolve()
        if key in originals:
            problems.append(Outcome(src, dst, "failed", f"the output would replace the input {originals[key]}; "
                                                        "choose another -o"))
        elif key in claimed:
            problems.append(Outcome(src, dst, "failed", f"{claimed[key]} has the same output name {dst}"))
        else:
            claimed[key] = src
            pairs.append((src, dst))
    return JobPlan(tuple(pairs), tuple(problems))


def run_job(
    upscaler: Upscaler,
    plan: JobPlan,
    tile: int | None = None,
    memory_budget: int | None = None,
    overwrite: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Upscale every pair of ``plan``; returns the plan's problems followed by one outcome per pair.

    ``on_outcome`` is called after each pair (for a progress display). Unreadable inputs and
    outputs that cannot be written are ``failed`` outcomes, not exceptions.
    """
    outcomes = list(plan.problems)
    for src, dst in plan.pairs:
        if dst.exists() and not overwrite:
            outcome = Outcome(src, dst, "exists", f"{dst} exists; pass --overwrite to replace it")
        else:
            try:
                width, height = upscale_file(upscaler, src, dst, tile, memory_budget)
                outcome = Outcome(src, dst, "written", f"{width}x{height}")
            except (ValueError, OSError) as exc:
                outcome = Outcome(src, dst, "failed", str(exc))
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
