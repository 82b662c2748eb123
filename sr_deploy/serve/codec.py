"""Images in and out of HTTP: the response format a client asked for, and an uploaded file checked from its
header (pixel limit) before it is decoded. Reading and encoding are the project's own
(:mod:`sr_deploy.data.image_io`, :func:`sr_deploy.runtime.images.check_pixel_limit`).
"""

from __future__ import annotations

import os

import numpy as np

from sr_deploy.data.image_io import ImageReadError, check_pixel_limit, read_image

#: response formats by name, with their media types (PNG first: the default)
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "tiff": "image/tiff"}
_ALIASES = {"jpg": "jpeg", "tif": "tiff"}


class RequestError(ValueError):
    """A request the service refuses: ``status`` is the HTTP status, the message says why (no server paths)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def choose_format(query: str | None, accept: str | None) -> str:
    """The response format: ``query`` (``png``, ``jpeg``/``jpg``, ``webp``, ``tiff``/``tif``) when given, else
    the client's most preferred :data:`MEDIA_TYPES` entry in ``accept`` (q-values honoured; ``image/*`` and
    ``*/*`` mean PNG), else PNG. RequestError 406 when neither names a format served here."""
    if query:
        name = _ALIASES.get(query.lower(), query.lower())
        if name not in MEDIA_TYPES:
            raise RequestError(406, f"unknown format {query!r}; choose from {', '.join(MEDIA_TYPES)}")
        return name
    if not accept:
        return "png"
    by_type = {media: name for name, media in MEDIA_TYPES.items()}
    best: tuple[float, int, str] | None = None
    for order, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        found = by_type.get(media.lower()) or ("png" if media in ("*/*", "image/*") else None)
        if found is not None and q > 0 and (best is None or (q, -order) > (best[0], best[1])):
            best = (q, -order, found)
    if best is None:
        raise RequestError(406, f"none of the accepted types ({accept}) is served; use one of "
                                f"{', '.join(MEDIA_TYPES.values())}")
    return best[2]


def decode_upload(path: str | os.PathLike[str], scale: int, max_pixels: int) -> np.ndarray:
    """The uploaded image at ``path`` (a file the server named) as ``H x W x C`` uint8/uint16: its size is
    checked from the header first (413 when it or its ``scale`` times larger output is over the limit,
    nothing decoded), then it is read (415 when it is not an image, 400 when it is broken)."""
    try:
        check_pixel_limit(path, scale, max_pixels)
    except ImageReadError as exc:
        raise RequestError(413, f"image {exc.cause}") from None
    try:
        return read_image(path)
    except ImageReadError as exc:
        if exc.cause.startswith("too large"):
            raise RequestError(413, f"image {exc.cause}") from None
        status = 415 if exc.cause.startswith("not an image") else 400
        raise RequestError(status, f"cannot read the image: {exc.cause}") from None
