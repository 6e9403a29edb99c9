"""A PACS port already taken: the embedded PACS names the port and the fix, and leaves none of
its other ports open (no half-started server a client could reach)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dicomkit.errors import DicomkitError
from tests.conftest import free_port, start_pacs


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_an_http_port_in_use_is_named_and_the_dicom_ports_close(tmp_path: Path) -> None:
    dicom, mwl = free_port(), free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http = taken.getsockname()[1]
        with pytest.raises(DicomkitError) as err:
            start_pacs(tmp_path, "ORTHANC", dicom_port=dicom, mwl_port=mwl, http_port=http)
    assert f"HTTP port 127.0.0.1:{http} is already in use" in err.value.message
    assert f"sport = :{http}" in err.value.hint
    assert not listening(dicom) and not listening(mwl)


def test_a_dicom_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DicomkitError) as err:
            start_pacs(tmp_path, "ORTHANC", dicom_port=port)
    assert f"DICOM port 127.0.0.1:{port} is already in use" in err.value.message


def test_free_ports_are_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
