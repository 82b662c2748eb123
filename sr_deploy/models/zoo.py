"""Models shipped inside the package, addressed by name (``--model srresnet-x4``)."""

from __future__ import annotations

import os
from pathlib import Path

RELEASED_DIR = Path(__file__).parent / "released"


def released_models() -> list[str]:
    """Names of the models shipped with this installation."""
    return sorted(p.stem for p in RELEASED_DIR.glob("*.safetensors"))


def resolve_weights(name_or_path: str | os.PathLike[str]) -> Path:
    """A shipped model name -> its safetensors path; anything else is returned as a path.

    Raises FileNotFoundError naming the shipped models when neither exists.
    """
    text = os.fspath(name_or_path)
    if not isinstance(name_or_path, os.PathLike) and "/" not in text and os.sep not in text:
        shipped = RELEASED_DIR / f"{text}.safetensors"
        if shipped.is_file():
            return shipped
    p = Path(text)
    if p.exists():
        return p
    raise FileNotFoundError(
        f"model {text!r} is neither a file nor a shipped model (shipped: {', '.join(released_models()) or 'none'})"
    )
