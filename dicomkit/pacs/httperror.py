"""The HTTP error the PACS's web routes raise: a status and a reason, answered as JSON."""

from __future__ import annotations


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
