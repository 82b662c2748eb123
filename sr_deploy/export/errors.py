"""Errors raised by the export stage (all are ``ValueError``s so the CLI reports them uniformly)."""

from __future__ import annotations


class ExportError(ValueError):
    """An export could not be produced; the message names the file and the problem."""


class ParityError(ExportError):
    """An exported model disagrees with its reference beyond the gate; nothing was written.

    ``report``: the per-batch comparison (see :class:`sr_deploy.export.parity.ParityReport`).
    """

    def __init__(self, message: str, report: object) -> None:
        super().__init__(message)
        self.report = report
