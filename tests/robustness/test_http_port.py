"""A DICOM command pointed at an HTTP port says so within seconds, instead of waiting out the
timeout: Orthanc's HTTP server (and Python's) waits for the end of a request's headers, which
an A-ASSOCIATE-RQ never sends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dicomkit.dicom.net import Peer, echo
from dicomkit.errors import ConnectionFailed
from tests.conftest import Lab


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _assert_named_quickly(port: int) -> None:
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed, match="is an HTTP server") as exc:
        echo(Peer("127.0.0.1", port, "ORTHANC"), "DICOMKIT", timeout=10)
    assert time.monotonic() - t0 < 5
    assert "DICOM port" in exc.value.hint


def test_echo_to_a_python_http_server(http_port: int) -> None:
    _assert_named_quickly(http_port)


@pytest.mark.orthanc
def test_echo_to_orthancs_http_port(native_lab: Lab) -> None:
    _assert_named_quickly(native_lab.endpoints.http_port)
