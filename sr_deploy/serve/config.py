"""What a serving process is told: the model to load and the limits it keeps (one frozen record, checked once).

Units: pixels are input (LR) pixels, bytes are request-body bytes, times are seconds unless the name says
``_ms``. The memory a server can hold is bounded by ``max_queue`` requests of at most ``max_pixels`` input
pixels each: every admitted request holds its decoded input and a float32 output of ``12 * scale**2`` bytes
per input pixel; a request beyond ``max_queue`` is answered 503 without being read.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from sr_deploy.vocabulary import AUTO

#: serving defaults: 4 MP in (2560 x 1600; x4: 64 MP out), 16 requests admitted, 64 MiB bodies
DEFAULT_MAX_PIXELS = 4_000_000
DEFAULT_MAX_QUEUE = 16
DEFAULT_MAX_BODY_BYTES = 64 << 20
DEFAULT_MAX_BATCH = 8
DEFAULT_BATCH_WAIT_MS = 5.0
DEFAULT_REQUEST_TIMEOUT_S = 120.0
DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True)
class ServeConfig:
    """A serving process's settings.

    ``window``: the side of the fixed window (input pixels) every image is cut into, so windows of
    different requests batch together (None: :func:`default_window` of the model's receptive radius);
    ``workers``: threads running batches on the one loaded model (all sr-deploy backends are thread
    safe); ``token``: the bearer token every request but the health probes must carry (None: none).
    """

    model: str = "srresnet-x4"
    backend: str = AUTO
    precision: str | None = None
    device: str | None = None
    max_psnr_drop: float = 0.0
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int = DEFAULT_MAX_BATCH
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    window: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_queue: int = DEFAULT_MAX_QUEUE
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    grace_s: float = DEFAULT_GRACE_S
    token: str | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        positive = {"port": self.port, "workers": self.workers, "max_batch": self.max_batch,
                    "max_pixels": self.max_pixels, "max_queue": self.max_queue,
                    "max_body_bytes": self.max_body_bytes}
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name, seconds in {"batch_wait_ms": self.batch_wait_ms, "grace_s": self.grace_s,
                              "max_psnr_drop": self.max_psnr_drop}.items():
            if not seconds >= 0:
                raise ValueError(f"{name} must be >= 0, got {seconds}")
        if not self.request_timeout_s > 0:  # 0 answered every request 504 while /readyz said ready
            raise ValueError(f"request_timeout_s must be > 0 seconds, got {self.request_timeout_s}")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window must be >= 1 input pixels, got {self.window}")
        if self.token is not None and not self.token:
            raise ValueError("the token is empty")
        if not is_loopback(self.host) and self.token is None and not self.insecure:
            raise ValueError(f"binding to {self.host} (not a loopback address) needs a token (token_file) or an "
                             "explicit insecure=True: anyone who can reach the port could use the model")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str | os.PathLike[str]) -> str:
    """The bearer token in ``path`` (surrounding whitespace stripped); ValueError naming the file when it is
    empty or unreadable."""
    p = Path(path)
    try:
        token = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the token file {p}: {exc}") from None
    if not token:
        raise ValueError(f"the token file {p} is empty")
    return token


def default_window(halo: int) -> int:
    """The serving window side for a model whose receptive radius is ``halo`` input pixels: 128, or larger
    so that the kept core of an inner window is at least as wide as the two halos around it."""
    return max(128, 4 * halo)
