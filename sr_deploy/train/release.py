"""Ship a trained run as a named model: ``models/released/NAME.safetensors`` + ``NAME.json`` + ``NAME.log.csv``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from sr_deploy.artifacts import atomic_open, atomic_write_json, sha256_file
from sr_deploy.models.zoo import RELEASED_DIR, resolve_weights


def _lineage(init: str) -> dict[str, Any]:
    """What a run started from: the weights' path and sha256, and the training summary of their
    sidecar JSON when there is one (``{}`` otherwise)."""
    weights = resolve_weights(init)
    sidecar = weights.with_suffix(".json")
    parent = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return {"weights": str(init), "sha256": sha256_file(weights), "training": parent.get("training", {})}


def release_run(run_dir: str | os.PathLike[str], name: str, evaluation: dict[str, Any] | None = None,
                dest: str | os.PathLike[str] = RELEASED_DIR) -> Path:
    """Copy the run's ``best.safetensors`` to ``dest/NAME.safetensors`` with release metadata.

    The JSON sidecar keeps the descriptor and training summary (data, steps, time, validation) and
    adds the weights' sha256, ``evaluation`` (e.g. Set5/Set14 Y-PSNR/SSIM) and, for a run warm-started
    from other weights (``TrainConfig.init``), ``training.init``: the starting weights' sha256 and their own
    training summary (so the lineage of a model trained across sessions stays on record); the
    training log is copied beside it. Everything is written atomically.
    """
    run = Path(run_dir)
    best = run / "best.safetensors"
    if not best.is_file():
        raise FileNotFoundError(f"{run} has no best.safetensors (has the run validated at least once?)")
    meta = json.loads(best.with_suffix(".json").read_text())
    config = run / "config.json"
    init = json.loads(config.read_text()).get("init") if config.is_file() else None
    if init:
        meta["training"]["init"] = _lineage(init)
    out = Path(dest) / f"{name}.safetensors"
    with atomic_open(out, "wb") as fh, open(best, "rb") as src:
        shutil.copyfileobj(src, fh)
    meta["descriptor"]["name"] = name
    meta["sha256"] = sha256_file(out)
    meta["evaluation"] = evaluation or {}
    atomic_write_json(out.with_suffix(".json"), meta)
    if (run / "log.csv").is_file():
        with atomic_open(Path(dest) / f"{name}.log.csv", "wb") as fh, open(run / "log.csv", "rb") as src:
            shutil.copyfileobj(src, fh)
    return out
