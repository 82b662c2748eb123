"""Serving settings: who may bind where, token files, limits; response-format negotiation."""

from __future__ import annotations

from pathlib import Path

import pytest

from sr_deploy.serve.codec import RequestError, choose_format
from sr_deploy.serve.config import ServeConfig, default_window, is_loopback, read_token


def test_binding_beyond_loopback_needs_a_token_or_insecure() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host) and ServeConfig(host=host).host == host
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(ValueError, match="needs a token"):
            ServeConfig(host=host)
        assert ServeConfig(host=host, token="t").token == "t"
        assert ServeConfig(host=host, insecure=True).insecure


def test_limits_are_checked() -> None:
    for field in ("max_batch", "max_pixels", "max_queue", "max_body_bytes", "workers", "port"):
        with pytest.raises(ValueError, match=field):
            ServeConfig(**{field: 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_wait_ms"):
        ServeConfig(batch_wait_ms=-1)
    with pytest.raises(ValueError, match="request_timeout_s must be > 0"):  # every request was a 504
        ServeConfig(request_timeout_s=0)
    with pytest.raises(ValueError, match="empty"):
        ServeConfig(token="")
    assert default_window(40) == 160 and default_window(10) == 128


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  abc123\n")
    assert read_token(path) == "abc123"
    path.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_token(path)
    with pytest.raises(ValueError, match="cannot read the token file"):
        read_token(tmp_path / "missing")


@pytest.mark.parametrize(("query", "accept", "expected"), [
    (None, None, "png"),
    ("JPG", "image/png", "jpeg"),
    ("tif", None, "tiff"),
    (None, "image/webp", "webp"),
    (None, "image/jpeg;q=0.5, image/webp;q=0.9", "webp"),
    (None, "text/html, image/*;q=0.8", "png"),
    (None, "image/tiff, image/png", "tiff"),
    (None, "*/*", "png"),
])
def test_choose_format(query: str | None, accept: str | None, expected: str) -> None:
    assert choose_format(query, accept) == expected


def test_choose_format_refuses() -> None:
    for query, accept in (("gif", None), (None, "text/html"), (None, "image/png;q=0")):
        with pytest.raises(RequestError) as info:
            choose_format(query, accept)
        assert info.value.status == 406


def test_the_command_line_names_its_own_options() -> None:
    from typer.testing import CliRunner

    from sr_deploy.cli import app

    words = " ".join(CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"]).output.split())
    assert "needs a token (--token-file) or an explicit --insecure" in words  # it said token_file / insecure=True
    zero = CliRunner().invoke(app, ["serve", "--max-batch", "0"], env={"COLUMNS": "200"})
    assert zero.exit_code == 2 and "--max-batch" in zero.output
