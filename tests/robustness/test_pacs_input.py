"""Hostile peers against the embedded PACS (``python -m dicomkit.pacs``): raw sockets with
malformed, truncated and gigantic PDUs, idle connections, floods beyond the association limit,
path-like AE titles and UIDs, and a wildcard query built to backtrack. After each, the server
still answers a C-ECHO; at the end its memory is bounded and every file it wrote is inside
its storage area, named by hash."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomkit.ris.models import OrderIn
from dicomkit.ris.store import OrderStore
from tests.conftest import testdata
from tests.robustness.conftest import PACS_AET, Pacs, files_under, rss_kb, start_pacs, stop

pytestmark = pytest.mark.timeout(120)

MAX_ASSOCIATIONS = 6
NETWORK_TIMEOUT = 2.0
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pacs]:
    home = tmp_path_factory.mktemp("pacs-sandbox") / "deep" / "pacs"
    server = start_pacs(
        home, max_associations=MAX_ASSOCIATIONS, network_timeout=NETWORK_TIMEOUT, max_pdu=65536
    )
    # A synthetic order whose name a backtracking wildcard would chew on for hours.
    OrderStore(home / "ris.sqlite3", server.worklist_dir).create(
        OrderIn(patient_id="P-A", patient_name="A" * 60, accession="ACC-AAA", modality="CR")
    )
    try:
        yield server
    finally:
        stop(server.proc)


# ---- raw PDUs -----------------------------------------------------------------------------


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(called: str = PACS_AET, calling: str = "RAWPEER", max_pdu: int = 16384) -> bytes:
    """A minimal, valid A-ASSOCIATE-RQ proposing Verification (PS3.8 9.3.2)."""
    context = _item(0x30, VERIFICATION.encode()) + _item(0x40, IMPLICIT_LE.encode())
    body = (
        struct.pack(">HH", 1, 0)
        + called.encode().ljust(16)[:16]
        + calling.encode().ljust(16)[:16]
        + b"\0" * 32
        + _item(0x10, b"1.2.840.10008.3.1.1.1")
        + _item(0x20, bytes([1, 0, 0, 0]) + context)
        + _item(0x50, _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, b"1.2.3.4"))
    )
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def exchange(port: int, data: bytes, *, wait: float = 5.0, shut: bool = False) -> bytes:
    """Send raw bytes; return whatever comes back before the server closes (or ``wait`` ends)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            return b""
        got = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            got += chunk
        return got


def echo_ok(pacs: Pacs, timeout: float = 10.0) -> bool:
    """A C-ECHO from a well-behaved peer, retried while the server sheds a flood."""
    from pynetdicom import AE

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ae = AE(ae_title="DICOMKIT")
        ae.add_requested_context(VERIFICATION)
        ae.acse_timeout = ae.network_timeout = 5
        assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title=PACS_AET)
        if assoc.is_established:
            status = assoc.send_c_echo()
            assoc.release()
            return bool(status) and status.Status == 0
        time.sleep(0.2)
    return False


def assert_closed_or_refused(reply: bytes) -> None:
    # Nothing, an A-ASSOCIATE-RJ (0x03) or an A-ABORT (0x07); never an accept of garbage.
    assert reply == b"" or reply[0] in (0x03, 0x07), reply[:32]


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 200,  # a TLS ClientHello
        bytes(range(256)) * 4,
        b"\x01",
        b"\x01\x00\x00\x00",  # a header cut short
        struct.pack(">BBI", 0x01, 0, 0),  # A-ASSOCIATE-RQ of length 0
        struct.pack(">BBI", 0x01, 0, 200) + b"\x00\x01" + b"A" * 20,  # truncated, then EOF
        struct.pack(">BBI", 0x55, 0, 4) + b"junk",  # unknown PDU type
        struct.pack(">BBI", 0x04, 0, 10) + b"\x00" * 10,  # P-DATA before any association
        struct.pack(">BBI", 0x01, 0, 0xFFFFFFFF) + b"\x00" * 64,  # a 4 GiB A-ASSOCIATE-RQ
        associate_rq()[:-20],  # a valid request missing its tail
        associate_rq().replace(b"1.2.840.10008.3.1.1.1", b"9.9.9.9.9.9.9.9.9.9.9"),
    ],
    ids=[
        "http",
        "tls",
        "binary",
        "one-byte",
        "short-header",
        "zero-length",
        "truncated",
        "unknown-type",
        "pdata-first",
        "length-ffffffff",
        "truncated-rq",
        "bad-app-context",
    ],
)
def test_malformed_pdus_are_dropped_and_others_served(pacs: Pacs, data: bytes) -> None:
    assert_closed_or_refused(exchange(pacs.dicom_port, data, wait=NETWORK_TIMEOUT + 3, shut=True))
    assert pacs.proc.poll() is None
    assert echo_ok(pacs)


def test_pdata_of_length_ffffffff_after_an_association(pacs: Pacs) -> None:
    """Once associated, a P-DATA-TF header claiming 4 GiB must not be buffered."""
    before = rss_kb(pacs.proc.pid)
    with socket.create_connection(("127.0.0.1", pacs.dicom_port), timeout=10) as s:
        s.sendall(associate_rq())
        ac = s.recv(65536)
        assert ac[:1] == b"\x02", ac[:16]  # A-ASSOCIATE-AC
        s.sendall(struct.pack(">BBI", 0x04, 0, 0xFFFFFFFF) + b"\x00" * 65536)
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert_closed_or_refused(reply)
    assert rss_kb(pacs.proc.pid) - before < 20_000
    assert echo_ok(pacs)


def test_pdv_longer_than_its_pdu(pacs: Pacs) -> None:
    with socket.create_connection(("127.0.0.1", pacs.dicom_port), timeout=10) as s:
        s.sendall(associate_rq())
        assert s.recv(65536)[:1] == b"\x02"
        pdv = struct.pack(">IBB", 5000, 1, 0x03) + b"\x00" * 10  # claims 5000, has 12
        s.sendall(struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv)
        time.sleep(0.3)
        s.sendall(struct.pack(">BBI", 0x05, 0, 4) + b"\0" * 4)  # then A-RELEASE-RQ
        with contextlib.suppress(OSError):
            s.recv(100)
    assert echo_ok(pacs)


# ---- holding connections --------------------------------------------------------------------


def test_idle_and_half_open_connections_are_dropped(pacs: Pacs) -> None:
    socks = [socket.create_connection(("127.0.0.1", pacs.dicom_port), timeout=15) for _ in range(3)]
    socks[1].sendall(associate_rq()[:30])  # starts a request, never finishes it
    socks[2].sendall(associate_rq())  # associates, then says nothing
    t0 = time.monotonic()
    try:
        for s in socks:
            try:
                while s.recv(65536):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
    finally:
        for s in socks:
            s.close()
    assert time.monotonic() - t0 < NETWORK_TIMEOUT * 2 + 4
    assert echo_ok(pacs)


def test_flood_of_raw_connections_beyond_the_limit(pacs: Pacs) -> None:
    """Four times the association limit of silent sockets: each is shed after the network
    timeout, memory stays put, and a real peer gets in as soon as slots free up."""
    before = rss_kb(pacs.proc.pid)
    flood = [
        socket.create_connection(("127.0.0.1", pacs.dicom_port), timeout=15)
        for _ in range(MAX_ASSOCIATIONS * 4)
    ]
    try:
        t0 = time.monotonic()
        assert echo_ok(pacs, timeout=NETWORK_TIMEOUT * 3 + 5)
        assert time.monotonic() - t0 < NETWORK_TIMEOUT * 3 + 5
        assert rss_kb(pacs.proc.pid) - before < 30_000
    finally:
        for s in flood:
            s.close()


def test_flood_of_associations_beyond_the_limit(pacs: Pacs) -> None:
    from pynetdicom import AE

    assert echo_ok(pacs, timeout=NETWORK_TIMEOUT * 3 + 5)  # earlier floods have drained
    n = MAX_ASSOCIATIONS * 3
    results: list[str] = []
    all_tried = threading.Condition()
    go = threading.Barrier(n)

    def one() -> None:
        ae = AE(ae_title="FLOOD")
        ae.add_requested_context(VERIFICATION)
        ae.acse_timeout = ae.network_timeout = 10
        go.wait()
        assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title=PACS_AET)
        state = (
            "established" if assoc.is_established else "rejected" if assoc.is_rejected else "other"
        )
        with all_tried:
            results.append(state)
            all_tried.notify_all()
            # Hold every slot until all have tried, so slots are never reused mid-flood.
            all_tried.wait_for(lambda: len(results) == n, timeout=25)
        if assoc.is_established:
            assoc.release()

    threads = [threading.Thread(target=one) for _ in range(MAX_ASSOCIATIONS * 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == n
    established = results.count("established")
    # pynetdicom counts its own threads loosely: allow one over the limit.
    assert 1 <= established <= MAX_ASSOCIATIONS + 1, results
    # The rest are refused (A-ASSOCIATE-RJ, or aborted on a busy machine), none hangs.
    assert len(results) - established >= MAX_ASSOCIATIONS, results
    assert echo_ok(pacs)


# ---- path-like AE titles and UIDs ---------------------------------------------------------


@pytest.mark.parametrize("called", ["../X", "/tmp/x", "..", "ORTHANC/../x"])
def test_path_like_called_ae_is_rejected(pacs: Pacs, called: str) -> None:
    before = files_under(pacs.home.parent)
    reply = exchange(pacs.dicom_port, associate_rq(called=called))
    assert reply[:1] == b"\x03"  # A-ASSOCIATE-RJ (called AE not recognised)
    assert files_under(pacs.home.parent) == before


@pytest.mark.parametrize("calling", ["../X", "/tmp/x", ".."])
def test_path_like_calling_ae_names_nothing(pacs: Pacs, calling: str) -> None:
    before = files_under(pacs.home.parent)
    reply = exchange(pacs.dicom_port, associate_rq(calling=calling), wait=1)
    assert reply[:1] == b"\x02"  # echo is open to anyone, like Orthanc
    assert files_under(pacs.home.parent) == before


def store_dataset(pacs: Pacs, **uids: str) -> int | None:
    from pydicom import dcmread
    from pynetdicom import AE

    ds = dcmread(testdata("CT_small.dcm"))
    for k, v in uids.items():
        setattr(ds, k, v)
    ae = AE(ae_title="DICOMKIT")
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title=PACS_AET)
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(ds)
        return int(rsp.Status) if rsp and "Status" in rsp else None
    finally:
        assoc.release()


@pytest.mark.parametrize(
    "uids",
    [
        {"SOPInstanceUID": "/tmp/dkrobust"},
        {"SOPInstanceUID": ".."},
        {"SOPInstanceUID": "../../../../dkrobust"},
        {"SOPInstanceUID": "1.2.3", "StudyInstanceUID": "..", "SeriesInstanceUID": "/"},
        {"SOPInstanceUID": "1.2.4", "PatientID": "../../dkrobust"},
        {"SOPInstanceUID": "9" * 64},
    ],
    ids=["abs-path", "dotdot", "deep-traversal", "study-dotdot", "patient-id", "64-digits"],
)
def test_path_like_uids_are_stored_by_hash_inside_the_storage(
    pacs: Pacs, uids: dict[str, str]
) -> None:
    before = files_under(pacs.home.parent)
    status = store_dataset(pacs, **uids)
    assert status in (0x0000, 0xA900, 0xC000), status  # stored by hash, or refused with a status
    new = files_under(pacs.home.parent) - before
    for path in new:
        assert path.is_relative_to(pacs.storage_dir), path
        assert path.name.startswith(("index.sqlite3", "mpps.sqlite3")) or re.fullmatch(
            r"[0-9a-f]{64}\.dcm", path.name
        )
    assert not list(Path("/tmp").glob("dkrobust*"))


def test_garbage_dataset_in_a_valid_c_store(pacs: Pacs, tmp_path: Path) -> None:
    """Valid DIMSE command, data set bytes that are not a data set: a status, not a crash."""
    from pydicom import dcmread
    from pydicom.filewriter import write_file_meta_info
    from pynetdicom import AE, _config

    meta = dcmread(testdata("CT_small.dcm")).file_meta
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.9.9999.1"
    path = tmp_path / "garbage.dcm"
    with open(path, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(fh, meta)  # type: ignore[arg-type]
        fh.write(b"\x08\x00\x18\x00UI\xff\x7f" + bytes(range(256)) * 8)  # a lying length
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the bytes as they are
    ae = AE(ae_title="DICOMKIT")
    ae.add_requested_context(meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID)
    before = pacs.stats()["CountInstances"]
    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title=PACS_AET)
    assert assoc.is_established
    try:
        rsp = assoc.send_c_store(path)
        assert rsp and rsp.Status in (0xA900, 0xC000), rsp
    finally:
        if assoc.is_established:
            assoc.release()
    assert pacs.stats()["CountInstances"] == before
    assert echo_ok(pacs)


# ---- queries ----------------------------------------------------------------------------------


def test_backtracking_wildcard_is_answered_promptly(pacs: Pacs) -> None:
    """``*A*A*A...*B`` against a 60-character name: a regex engine backtracks for hours."""
    from dicomkit.dicom.net import Peer
    from dicomkit.dicom.scu import StudyQuery, find_studies, find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    pattern = "*A" * 12 + "*B"
    peer = Peer("127.0.0.1", pacs.mwl_port, PACS_AET)
    t0 = time.monotonic()
    assert find_worklist(peer, "DICOMKIT", WorklistQuery(patient_name=pattern), timeout=20) == []
    assert find_worklist(peer, "DICOMKIT", WorklistQuery(patient_name="A*A?A"), timeout=20)
    qr = Peer("127.0.0.1", pacs.dicom_port, PACS_AET)
    assert find_studies(qr, "DICOMKIT", StudyQuery(patient_name=pattern), timeout=20) == []
    assert time.monotonic() - t0 < 5


# ---- after all of it -------------------------------------------------------------------------


def test_after_all_of_it_memory_bounded_and_nothing_outside(pacs: Pacs) -> None:
    assert pacs.proc.poll() is None
    assert rss_kb(pacs.proc.pid) < 300_000, "RSS over 300 MB"
    allowed_top = {pacs.home / "server.json", pacs.home / "pacs.log", pacs.home / "ris.sqlite3"}
    for path in files_under(pacs.home.parent.parent):
        if path in allowed_top or path.parent == pacs.worklist_dir:
            continue
        if path.name.startswith("ris.sqlite3"):
            continue
        assert path.is_relative_to(pacs.storage_dir), f"written outside the storage: {path}"
        assert path.name.startswith(("index.sqlite3", "mpps.sqlite3")) or re.fullmatch(
            r"[0-9a-f]{64}\.dcm", path.name
        ), path
    # pynetdicom logs hostile PDUs with tracebacks; our own code must not have failed.
    ours = [ln for ln in pacs.log.read_text().splitlines() if "ERROR dicomkit" in ln]
    assert ours == [], ours
    assert echo_ok(pacs)
