"""Shipped models addressed by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_deploy.models import released_models, resolve_weights
from sr_deploy.models.zoo import RELEASED_DIR


def test_unknown_name_lists_shipped_models() -> None:
    with pytest.raises(FileNotFoundError) as info:
        resolve_weights("no-such-model-x4")
    message = str(info.value)
    assert "'no-such-model-x4'" in message
    shipped = released_models()
    assert shipped == sorted(p.stem for p in RELEASED_DIR.glob("*.safetensors"))
    for name in shipped:
        assert name in message
    if not shipped:
        assert "shipped: none" in message


def test_shipped_names_resolve_to_their_files() -> None:
    for name in released_models():
        assert resolve_weights(name) == RELEASED_DIR / f"{name}.safetensors"


def test_existing_path_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "mine.safetensors"
    path.write_bytes(b"")
    assert resolve_weights(path) == path
    assert resolve_weights(str(path)) == path
