"""The error family. The library raises these; only ``dicomkit.cli`` prints them.

Every error carries a ``hint`` that names the fix, and an ``exit_code`` that scripts can rely on.
"""

from __future__ import annotations

from typing import Any


class ExitCode:
    OK = 0
    FAILED = 1  # the operation ran and the answer was "no" (a check failed, a file was refused)
    USAGE = 2  # bad input from the user (flag, file, order field)
    UNREACHABLE = 3  # a peer did not answer or refused the association
    NOT_RUNNING = 4  # the lab is not up
    ENGINE = 5  # the engine could not start or stop


class DicomkitError(Exception):
    """Base class: a message that names the problem and a hint that names the fix."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, hint: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
        }
        if self.details:
            out["details"] = self.details
        return out


class UsageError(DicomkitError):
    exit_code = ExitCode.USAGE


class ValidationError(UsageError):
    """One or more fields break a DICOM VR rule. ``errors`` maps field -> message."""

    def __init__(self, errors: dict[str, str], hint: str = "") -> None:
        lines = "; ".join(f"{k}: {v}" for k, v in errors.items())
        super().__init__(f"invalid value(s): {lines}", hint or "correct the field(s) named above")
        self.errors = errors
        self.details = {"fields": errors}


class ConfigError(UsageError):
    pass


class ConnectionFailed(DicomkitError):
    """The peer did not answer at TCP level, or refused/aborted the association."""

    exit_code = ExitCode.UNREACHABLE


class AssociationRejected(ConnectionFailed):
    pass


class DimseFailure(DicomkitError):
    """The association worked but the peer answered with a failure status."""


class LabNotRunning(DicomkitError):
    exit_code = ExitCode.NOT_RUNNING


class EngineError(DicomkitError):
    exit_code = ExitCode.ENGINE


class PortInUse(EngineError):
    pass


class RisError(DicomkitError):
    """The RIS API answered with an error status."""

    def __init__(self, message: str, hint: str = "", status: int = 0, **details: Any) -> None:
        super().__init__(message, hint, status=status, **details)
        self.status = status
        if status in (400, 404, 409, 413, 422):
            self.exit_code = ExitCode.USAGE


class StateError(DicomkitError):
    """A state file (progress, lab state) is unreadable or foreign."""
