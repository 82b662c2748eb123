"""The errors sr-deploy raises on purpose; every message names the file or option and the problem.

- :class:`BackendUnavailable`: a backend or device cannot run here (says what is missing).
- :class:`ModelFileError`: a model file is missing, unreadable or not what the step needs.
- :class:`ExportError`: an export could not be produced.
- :class:`ParityError`: an exported model disagrees with its reference beyond the gate; nothing was written.

All but :class:`BackendUnavailable` are ``ValueError``s, so callers can report bad input uniformly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sr_deploy.compare import Comparison


class BackendUnavailable(RuntimeError):
    """A requested backend cannot run on this machine; the message says what is missing."""


class ModelFileError(ValueError):
    """A model file (weights, ONNX, engine) is missing, unreadable or of the wrong kind; the message names it."""


class ExportError(ValueError):
    """An export could not be produced; the message names the file and the problem."""


class ParityError(ExportError):
    """An exported model disagrees with its reference beyond the gate; nothing was written.

    ``report``: the per-batch comparison (:class:`sr_deploy.compare.Comparison`).
    """

    def __init__(self, message: str, report: Comparison | None) -> None:
        super().__init__(message)
        self.report = report
