"""Reaching Ray: the optional ``[cluster]`` extra, and a connection that is closed again by whoever opened it.

``address``: ``"auto"`` (Ray's own search: ``$RAY_ADDRESS``, else the cluster ``ray start`` began on this
machine, else a new local instance in this process) or a cluster address (``HOST:6379``, ``ray://HOST:10001``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from sr_deploy.errors import BackendUnavailable

#: how to get Ray, for the message of a missing extra
INSTALL_HINT = "pip install 'sr-deploy[cluster]'"
#: the address that lets Ray find (or start) the cluster itself
AUTO_ADDRESS = "auto"


def require_ray() -> ModuleType:
    """The ``ray`` module, or :class:`~sr_deploy.errors.BackendUnavailable` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] part of the extra
    except ImportError as exc:
        raise BackendUnavailable(f"running on a Ray cluster needs Ray ({exc}): {INSTALL_HINT}") from None
    return ray


@contextmanager
def connected(address: str = AUTO_ADDRESS) -> Iterator[ModuleType]:
    """``ray``, connected: an already initialised Ray is used as it is (and left running); otherwise Ray is
    initialised with ``address`` and shut down (disconnected, or the local instance stopped) on exit."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    ray.init(address=None if address == AUTO_ADDRESS else address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
