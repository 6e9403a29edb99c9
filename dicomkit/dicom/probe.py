"""Tell an HTTP port from a DICOM one while an association waits: an HTTP server waits for
a request line that an A-ASSOCIATE-RQ never ends, so the association would only fail at the
timeout (10 s by default); an HTTP request to the same port answers at once."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from dicomkit.errors import ConnectionFailed

T = TypeVar("T")

PATIENCE = 0.5  # seconds: a DICOM peer on this network answers an A-ASSOCIATE-RQ sooner


def http_status_line(host: str, port: int, timeout: float = 2.0) -> str | None:
    """The status line (``HTTP/1.1 404 Not Found``) if ``host:port`` answers HTTP, else None."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"HEAD / HTTP/1.0\r\nHost: " + host.encode() + b"\r\n\r\n")
            data = sock.recv(128)
    except (OSError, UnicodeEncodeError):
        return None
    return data.split(b"\r\n")[0].decode("latin-1") if data.startswith(b"HTTP/") else None


def unless_http(host: str, port: int, call: Callable[[], T]) -> T:
    """``call()`` (a DICOM exchange with ``host:port``); when it has not returned within
    PATIENCE and the port answers HTTP, raise ConnectionFailed at once instead of waiting."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(PATIENCE)
    if worker.is_alive():
        line = http_status_line(host, port)
        if line is not None:
            raise ConnectionFailed(
                f"{host}:{port} is an HTTP server ({line}), not a DICOM one",
                "use the PACS's DICOM port (4242 in the lab; `dicomkit status` lists them)",
            )
        worker.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
