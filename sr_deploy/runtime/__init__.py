"""Runtime: every backend behind one small interface (:class:`Upscaler`), and :func:`load`."""

from sr_deploy.runtime.base import BackendUnavailable, ShapeLimits, Upscaler
from sr_deploy.runtime.select import load

__all__ = ["BackendUnavailable", "ShapeLimits", "Upscaler", "load"]
