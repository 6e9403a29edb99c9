"""The lean DIMSE path (pacs/lean.py) against hostile and unusual peers, in-process so each
test can look at the server's association slots, threads and files. Every test is bounded in
connections and time."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from dicomkit.pacs import lean
from dicomkit.pacs.server import PacsServer
from tests.conftest import start_pacs

pytestmark = pytest.mark.timeout(90)

AET = "LEANTEST"
VERIFICATION = "1.2.840.10008.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
MWL = "1.2.840.10008.5.1.4.31"
MAX_ASSOC = 32
TIMEOUT = 1.5


def make_server(home: Path, **kw: object) -> PacsServer:
    cfg: dict[str, object] = {"max_associations": MAX_ASSOC, "network_timeout": TIMEOUT, **kw}
    return cast(PacsServer, start_pacs(home, AET, **cfg))


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[PacsServer]:
    srv = make_server(tmp_path / "pacs")
    try:
        yield srv
    finally:
        srv.stop()


# ---- raw PS3.8 ------------------------------------------------------------------------------


def item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def context(cid: int, abstract: str, *syntaxes: str) -> bytes:
    subs = item(0x30, abstract.encode()) + b"".join(item(0x40, t.encode()) for t in syntaxes)
    return item(0x20, bytes([cid, 0, 0, 0]) + subs)


def associate_rq(
    contexts: bytes | None = None, called: str = AET, max_pdu: int = 16384, user: bytes = b""
) -> bytes:
    if contexts is None:
        contexts = context(1, VERIFICATION, IMPLICIT_LE)
    body = (
        struct.pack(">HH", 1, 0)
        + called.encode().ljust(16)
        + b"RAWPEER".ljust(16)
        + bytes(32)
        + item(0x10, b"1.2.840.10008.3.1.1.1")
        + contexts
        + item(0x50, item(0x51, struct.pack(">I", max_pdu)) + item(0x52, b"1.2.3.4") + user)
    )
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def elem(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def uid(value: str) -> bytes:
    raw = value.encode()
    return raw + b"\0" if len(raw) % 2 else raw


def command(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return elem(0, struct.pack("<I", len(body))) + body


def echo_rq(msg_id: int = 1) -> bytes:
    return command(
        elem(0x00000002, uid(VERIFICATION)),
        elem(0x00000100, struct.pack("<H", 0x0030)),
        elem(0x00000110, struct.pack("<H", msg_id)),
        elem(0x00000800, struct.pack("<H", 0x0101)),
    )


def pdata(cid: int, control: int, data: bytes) -> bytes:
    pdv = struct.pack(">IBB", len(data) + 2, cid, control) + data
    return struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_pdu(s: socket.socket) -> tuple[int, bytes]:
    head = recv_exact(s, 6)
    kind, _, length = struct.unpack(">BBI", head)
    return kind, recv_exact(s, length)


def closed_or_aborted(s: socket.socket, wait: float = 2 * TIMEOUT + 2) -> bool:
    """True when the server ends the connection (A-ABORT and/or close) within ``wait``."""
    s.settimeout(wait)
    try:
        while True:
            kind, _ = recv_pdu(s)
            if kind == 0x07:
                return True
    except (EOFError, ConnectionError):
        return True
    except TimeoutError:
        return False


def connect(port: int, rq: bytes | None = None) -> tuple[socket.socket, int, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(rq if rq is not None else associate_rq())
    kind, body = recv_pdu(s)
    return s, kind, body


def wait_idle(pacs: PacsServer, timeout: float = 2 * TIMEOUT + 3) -> None:
    deadline = time.monotonic() + timeout
    while (pacs.lean_active or pacs.acceptor_count()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pacs.lean_active and pacs.acceptor_count() == 0, "an association slot leaked"


def release(s: socket.socket) -> None:
    s.sendall(struct.pack(">BBI", 0x05, 0, 4) + bytes(4))
    kind, _ = recv_pdu(s)
    assert kind == 0x06
    s.close()


def status_of(body: bytes) -> int:
    """The Status of a one-PDV command P-DATA-TF body."""
    at = body.index(b"\x00\x00\x00\x09\x02\x00\x00\x00") + 8
    return int(struct.unpack_from("<H", body, at)[0])


def echo_ok(port: int) -> bool:
    s, kind, _ = connect(port)
    with s:
        if kind != 0x02:
            return False
        s.sendall(pdata(1, 0x03, echo_rq()))
        kind, body = recv_pdu(s)
        release(s)
    return kind == 0x04 and status_of(body) == 0


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---- the association limit ------------------------------------------------------------------


def test_burst_beyond_the_limit_accepts_exactly_max(pacs: PacsServer) -> None:
    """40 simultaneous requests, limit 32: 32 accepted, 8 rejected (transient, local limit),
    every slot, thread and descriptor freed afterwards."""
    assert echo_ok(pacs.cfg.dicom_port)
    wait_idle(pacs)
    threads0, fds0 = threading.active_count(), fds()
    n = 40
    socks = [
        socket.create_connection(("127.0.0.1", pacs.cfg.dicom_port), timeout=10) for _ in range(n)
    ]
    try:
        rq = associate_rq()
        for s in socks:
            s.sendall(rq)
        answers = [recv_pdu(s) for s in socks]
        kinds = [k for k, _ in answers]
        assert kinds.count(0x02) == MAX_ASSOC, kinds
        rejects = [b for k, b in answers if k == 0x03]
        assert len(rejects) == n - MAX_ASSOC
        assert all(b[1:4] == b"\x02\x03\x02" for b in rejects)
        for s, (k, _) in zip(socks, answers, strict=True):
            if k == 0x02:
                s.sendall(pdata(1, 0x03, echo_rq()))
                kind, body = recv_pdu(s)
                assert kind == 0x04 and status_of(body) == 0
                release(s)
    finally:
        for s in socks:
            s.close()
    wait_idle(pacs)
    deadline = time.monotonic() + 5
    while (threading.active_count() > threads0 or fds() > fds0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads0
    assert fds() <= fds0
    assert echo_ok(pacs.cfg.dicom_port)


# ---- A-ASSOCIATE-RQ edge cases --------------------------------------------------------------


def test_rq_sent_byte_by_byte_within_the_timeout_is_accepted(pacs: PacsServer) -> None:
    rq = associate_rq()
    with socket.create_connection(("127.0.0.1", pacs.cfg.dicom_port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pause = (TIMEOUT * 0.5) / len(rq)
        for b in rq:
            s.sendall(bytes([b]))
            time.sleep(pause)
        kind, _ = recv_pdu(s)
        assert kind == 0x02
        release(s)
    wait_idle(pacs)


def test_rq_slower_than_the_timeout_is_dropped(pacs: PacsServer) -> None:
    rq = associate_rq()
    with socket.create_connection(("127.0.0.1", pacs.cfg.dicom_port), timeout=10) as s:
        s.sendall(rq[:40])
        t0 = time.monotonic()
        assert closed_or_aborted(s)
        assert time.monotonic() - t0 < TIMEOUT + 2
    wait_idle(pacs)
    assert echo_ok(pacs.cfg.dicom_port)


def test_large_rq_is_answered(pacs: PacsServer) -> None:
    """128 contexts, each with many transfer syntaxes: ~200 KB, more than a socket buffer
    a peek can see at once; it must still be answered (by either path)."""
    syntaxes = [f"1.2.840.10008.1.2.{i}.{'9' * 40}" for i in range(24)] + [IMPLICIT_LE]
    contexts = b"".join(context(2 * i + 1, CT, *syntaxes) for i in range(128))
    rq = associate_rq(contexts)
    assert 180_000 < len(rq) < 256 * 1024
    s, kind, _ = connect(pacs.cfg.dicom_port, rq)
    with s:
        assert kind == 0x02, kind
        release(s)
    wait_idle(pacs)


@pytest.mark.parametrize(
    "contexts",
    [
        pytest.param(context(2, VERIFICATION, IMPLICIT_LE), id="even-id"),
        pytest.param(
            context(1, VERIFICATION, IMPLICIT_LE) + context(1, CT, IMPLICIT_LE), id="dup-id"
        ),
        pytest.param(item(0x20, bytes([1, 0, 0, 0])), id="empty-context"),
        pytest.param(
            item(0x20, bytes([1, 0, 0, 0]) + item(0x40, IMPLICIT_LE.encode())), id="no-abstract"
        ),
        pytest.param(item(0x20, b""), id="zero-length-item"),
        pytest.param(context(1, VERIFICATION + "\0", IMPLICIT_LE), id="odd-uid-padded"),
        pytest.param(context(1, "", IMPLICIT_LE), id="empty-abstract"),
    ],
)
def test_odd_rq_gets_an_answer_and_frees_the_slot(pacs: PacsServer, contexts: bytes) -> None:
    with socket.create_connection(("127.0.0.1", pacs.cfg.dicom_port), timeout=10) as s:
        s.sendall(associate_rq(contexts))
        s.settimeout(2 * TIMEOUT + 2)
        try:
            kind, _ = recv_pdu(s)
        except EOFError:
            kind = -1
        assert kind in (0x02, 0x03, 0x07), kind
        if kind == 0x02:
            release(s)
    wait_idle(pacs)
    assert echo_ok(pacs.cfg.dicom_port)


def test_parse_marks_what_pynetdicom_cannot_handle() -> None:
    no_abstract = item(0x20, bytes([1, 0, 0, 0]) + item(0x40, IMPLICIT_LE.encode()))
    for contexts in (no_abstract, context(2, VERIFICATION, IMPLICIT_LE)):
        rq = lean.parse_associate_rq(associate_rq(contexts)[6:])
        assert rq is not None and lean.malformed(rq)
    rq = lean.parse_associate_rq(associate_rq()[6:])
    assert rq is not None and not lean.malformed(rq)


def test_rq_item_overrunning_the_pdu(pacs: PacsServer) -> None:
    rq = bytearray(associate_rq())
    rq[6 + 68 + 2 : 6 + 68 + 4] = struct.pack(">H", 0xFFF0)  # the application context item
    with socket.create_connection(("127.0.0.1", pacs.cfg.dicom_port), timeout=10) as s:
        s.sendall(bytes(rq))
        assert closed_or_aborted(s)
    wait_idle(pacs)


# ---- P-DATA abuse ---------------------------------------------------------------------------


def _store_rq(sop_class: str = CT, sop_inst: str | None = "1.2.3.4.5", msg_id: int = 7) -> bytes:
    elems = [elem(0x00000002, uid(sop_class))] if sop_class else []
    elems += [
        elem(0x00000100, struct.pack("<H", 0x0001)),
        elem(0x00000110, struct.pack("<H", msg_id)),
        elem(0x00000700, struct.pack("<H", 0)),
        elem(0x00000800, struct.pack("<H", 0x0001)),
    ]
    if sop_inst is not None:
        elems.append(elem(0x00001000, uid(sop_inst)))
    return command(*elems)


def _ct_dataset(sop_inst: str = "1.2.3.4.5", sop_class: str = CT) -> bytes:
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_inst
    ds.PatientID = "P-LEAN"
    ds.PatientName = "LEAN^TEST"
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = "1.2.3.4.1"
    ds.Modality = "CT"
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, True
    write_dataset(buf, ds)
    return buf.getvalue()


def store_contexts() -> bytes:
    return (
        context(1, VERIFICATION, IMPLICIT_LE)
        + context(3, CT, IMPLICIT_LE)
        + context(5, MR, IMPLICIT_LE)
    )


def _bad_pdata() -> dict[str, bytes]:
    echo = echo_rq()
    pdv = struct.pack(">IBB", len(echo) + 2, 1, 0x03) + echo
    return {
        "pdv-overruns-pdu": struct.pack(">BBI", 0x04, 0, len(pdv))
        + pdv[:4].replace(pdv[:4], struct.pack(">I", len(echo) + 50))
        + pdv[4:],
        "pdv-length-0": struct.pack(">BBI", 0x04, 0, 4) + struct.pack(">I", 0),
        "empty-pdata": struct.pack(">BBI", 0x04, 0, 0),
        "unaccepted-context": pdata(9, 0x03, echo),
        "data-before-command": pdata(1, 0x02, b"\x08\x00\x10\x00\x00\x00\x00\x00"),
        "command-after-data": pdata(3, 0x03, _store_rq())
        + pdata(3, 0x00, b"\0" * 8)
        + pdata(3, 0x03, echo),
        "huge-pdu-length": struct.pack(">BBI", 0x04, 0, 0xFFFFFFF0) + b"\0" * 16,
        "unknown-pdu-type": struct.pack(">BBI", 0x09, 0, 4) + bytes(4),
        "second-associate-rq": associate_rq(),
        "garbage-command": pdata(1, 0x03, b"\x01\x02\x03"),
        "wrong-command-field": pdata(
            1,
            0x03,
            command(
                elem(0x00000002, uid(VERIFICATION)),
                elem(0x00000100, struct.pack("<H", 0x0021)),
                elem(0x00000110, struct.pack("<H", 1)),
                elem(0x00000800, struct.pack("<H", 0x0101)),
            ),
        ),
        "echo-without-message-id": pdata(
            1,
            0x03,
            command(
                elem(0x00000002, uid(VERIFICATION)),
                elem(0x00000100, struct.pack("<H", 0x0030)),
                elem(0x00000800, struct.pack("<H", 0x0101)),
            ),
        ),
    }


@pytest.mark.parametrize("name", sorted(_bad_pdata()))
def test_malformed_pdata_aborts_and_frees_the_slot(pacs: PacsServer, name: str) -> None:
    s, kind, _ = connect(pacs.cfg.dicom_port, associate_rq(store_contexts()))
    with s:
        assert kind == 0x02
        s.sendall(_bad_pdata()[name])
        t0 = time.monotonic()
        assert closed_or_aborted(s)
        assert time.monotonic() - t0 < TIMEOUT + 2
    wait_idle(pacs)
    assert not list((pacs.storage.files).rglob("*.dcm"))
    assert echo_ok(pacs.cfg.dicom_port)


def test_peer_stops_mid_pdu_is_aborted_within_the_timeout(pacs: PacsServer) -> None:
    s, kind, _ = connect(pacs.cfg.dicom_port)
    with s:
        assert kind == 0x02
        s.sendall(pdata(1, 0x03, echo_rq())[:9])
        t0 = time.monotonic()
        assert closed_or_aborted(s)
        assert time.monotonic() - t0 < TIMEOUT + 2
    wait_idle(pacs)


def test_peer_closing_at_every_point_of_a_store(pacs: PacsServer) -> None:
    data = _ct_dataset("1.2.3.4.99")
    stream = pdata(3, 0x03, _store_rq(sop_inst="1.2.3.4.99")) + pdata(3, 0x02, data)
    cuts = sorted({0, 1, 5, 6, 7, 11, 12, len(stream) // 2, len(stream) - 1})
    for cut in cuts:
        s, kind, _ = connect(pacs.cfg.dicom_port, associate_rq(store_contexts()))
        assert kind == 0x02
        s.sendall(stream[:cut])
        s.close()
    wait_idle(pacs)
    assert not list(pacs.storage.files.rglob("*.dcm"))
    assert not list(pacs.storage.files.rglob("*.tmp"))


def test_shutdown_with_active_and_half_open_associations(tmp_path: Path) -> None:
    srv = make_server(tmp_path / "pacs", network_timeout=5.0)
    port = srv.cfg.dicom_port
    active, _k, _ = connect(port)
    half = socket.create_connection(("127.0.0.1", port), timeout=10)
    rq = associate_rq()
    half.sendall(rq[:20])
    time.sleep(0.2)
    t0 = time.monotonic()
    stopper = threading.Thread(target=srv.stop)
    stopper.start()
    stopper.join(8)
    assert not stopper.is_alive(), "stop() hangs"
    assert time.monotonic() - t0 < 3
    assert closed_or_aborted(active, 3)
    with contextlib.suppress(OSError):  # a request completed after stop() must not be served
        half.sendall(rq[20:])
    half.settimeout(8)
    try:
        kind, _ = recv_pdu(half)
    except (EOFError, ConnectionError):
        kind = -1
    assert kind != 0x02
    active.close()
    half.close()
    deadline = time.monotonic() + 8
    while srv.lean_active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not srv.lean_active


# ---- DIMSE command sets ---------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["class", "instance"])
def test_store_without_affected_uids_is_aborted_like_pynetdicom(
    pacs: PacsServer, missing: str
) -> None:
    """pynetdicom aborts a C-STORE-RQ without (0000,0002) or (0000,1000) (mandatory, PS3.7
    9.3.1.1); the lean path did too rather than answer with empty UIDs."""
    inst = "1.2.3.4.77"
    rq = _store_rq(
        sop_class="" if missing == "class" else CT, sop_inst=None if missing == "instance" else inst
    )
    s, kind, _ = connect(pacs.cfg.dicom_port, associate_rq(store_contexts()))
    with s:
        assert kind == 0x02
        s.sendall(pdata(3, 0x03, rq) + pdata(3, 0x02, _ct_dataset(inst)))
        s.settimeout(5)
        kind, _ = recv_pdu(s)
        assert kind == 0x07
    wait_idle(pacs)
    assert not list(pacs.storage.files.rglob("*.dcm"))


def test_store_response_and_durability(pacs: PacsServer) -> None:
    inst = "1.2.3.4.78"
    s, kind, _ = connect(pacs.cfg.dicom_port, associate_rq(store_contexts()))
    with s:
        s.sendall(
            pdata(3, 0x03, _store_rq(sop_inst=inst, msg_id=9)) + pdata(3, 0x02, _ct_dataset(inst))
        )
        kind, body = recv_pdu(s)
        assert kind == 0x04 and status_of(body) == 0
        assert uid(inst) in body and uid(CT) in body
        release(s)
    files = list(pacs.storage.files.rglob("*.dcm"))
    assert len(files) == 1 and not list(pacs.storage.files.rglob("*.tmp"))
    assert pacs.index.instance_path(inst) is not None


def test_command_fragments_without_a_last_one_are_capped(pacs: PacsServer) -> None:
    """A command set is a few hundred bytes: fragments that never end must not be buffered
    without bound (each PDU arrives well within the timeout, so only a cap stops them)."""
    s, kind, _ = connect(pacs.cfg.dicom_port)
    with s:
        assert kind == 0x02
        chunk = pdata(1, 0x01, b"\0" * 16000)
        sent = 0
        with contextlib.suppress(OSError):
            for _ in range(256):  # 4 MB at most
                s.sendall(chunk)
                sent += 1
        # Aborted at the cap, not by the idle timeout once the fragments stop.
        assert sent < 256 or closed_or_aborted(s, TIMEOUT / 3), "4 MB of fragments buffered"
    wait_idle(pacs)


def test_query_identifier_fragments_are_capped(pacs: PacsServer) -> None:
    find = command(
        elem(0x00000002, uid(MWL)),
        elem(0x00000100, struct.pack("<H", 0x0020)),
        elem(0x00000110, struct.pack("<H", 1)),
        elem(0x00000700, struct.pack("<H", 0)),
        elem(0x00000800, struct.pack("<H", 0x0001)),
    )
    s, kind, _ = connect(pacs.cfg.dicom_port, associate_rq(context(1, MWL, IMPLICIT_LE)))
    with s:
        assert kind == 0x02
        chunk = pdata(1, 0x00, b"\0" * 16000)
        sent = 0
        with contextlib.suppress(OSError):
            s.sendall(pdata(1, 0x03, find))
            for _ in range(256):
                s.sendall(chunk)
                sent += 1
        assert sent < 256 or closed_or_aborted(s, TIMEOUT / 3), "4 MB of an identifier buffered"
    wait_idle(pacs)


# ---- C-FIND streaming -----------------------------------------------------------------------


@pytest.fixture
def mwl_pacs(tmp_path: Path) -> Iterator[PacsServer]:
    from dicomkit.pacs.settings import Modality
    from tests.integration.test_embedded_dcmtk import place_orders

    home = tmp_path / "mwl"
    (home / "worklists").mkdir(parents=True)
    place_orders(home / "worklists", home / "ris.sqlite3")
    srv = make_server(home, modalities={"raw": Modality("RAWPEER", "127.0.0.1", 11112)})
    srv.worklist.refresh()
    try:
        yield srv
    finally:
        srv.stop()


def _find_rq(msg_id: int) -> bytes:
    return command(
        elem(0x00000002, uid(MWL)),
        elem(0x00000100, struct.pack("<H", 0x0020)),
        elem(0x00000110, struct.pack("<H", msg_id)),
        elem(0x00000700, struct.pack("<H", 0)),
        elem(0x00000800, struct.pack("<H", 0x0001)),
    )


def _cancel_rq(msg_id: int) -> bytes:
    return command(
        elem(0x00000100, struct.pack("<H", 0x0FFF)),
        elem(0x00000120, struct.pack("<H", msg_id)),
        elem(0x00000800, struct.pack("<H", 0x0101)),
    )


def _identifier() -> bytes:
    return elem(0x00080050, b"") + elem(0x00100010, b"")  # AccessionNumber, PatientName


def _statuses(s: socket.socket) -> list[int]:
    """C-FIND-RSP statuses up to the final one (identifier PDVs skipped)."""
    out: list[int] = []
    s.settimeout(5)
    while True:
        kind, body = recv_pdu(s)
        assert kind == 0x04, kind
        if body[5] & 0x01:
            st = status_of(body)
            out.append(st)
            if st not in (0xFF00, 0xFF01):
                return out


def test_find_answers_and_cancel_of_another_message_id(mwl_pacs: PacsServer) -> None:
    port = mwl_pacs.cfg.dicom_port
    s, kind, _ = connect(port, associate_rq(context(1, MWL, IMPLICIT_LE)))
    with s:
        assert kind == 0x02
        # A C-CANCEL for a message that is not outstanding changes nothing.
        s.sendall(pdata(1, 0x03, _find_rq(3)) + pdata(1, 0x02, _identifier()))
        s.sendall(pdata(1, 0x03, _cancel_rq(99)))
        got = _statuses(s)
        assert got[-1] == 0 and got.count(0xFF00) >= 3, got
        # Release while a C-FIND streams: every answer, then A-RELEASE-RP.
        s.sendall(pdata(1, 0x03, _find_rq(4)) + pdata(1, 0x02, _identifier()))
        s.sendall(struct.pack(">BBI", 0x05, 0, 4) + bytes(4))
        got = _statuses(s)
        assert got[-1] == 0, got
        kind, _ = recv_pdu(s)
        assert kind == 0x06
    wait_idle(mwl_pacs)


def test_half_sent_requests_do_not_spin(tmp_path: Path) -> None:
    """Peers that send part of an A-ASSOCIATE-RQ and wait: the peek loop polls, but must
    not burn a CPU doing it (20 such peers for 1 s)."""
    srv = make_server(tmp_path / "pacs", network_timeout=5.0)
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", srv.cfg.dicom_port), timeout=5)
            s.sendall(associate_rq()[:30])
            socks.append(s)
        time.sleep(0.2)
        cpu0, t0 = time.process_time(), time.monotonic()
        time.sleep(1.0)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - t0)
        assert cpu < 0.25, f"{cpu:.2f} CPU seconds per second"
    finally:
        for s in socks:
            s.close()
        srv.stop()


def _elements(body: bytes) -> dict[int, bytes]:
    raw, pos, out = body[6:], 0, {}
    while pos < len(raw):
        _g, e, n = struct.unpack_from("<HHI", raw, pos)
        out[e] = raw[pos + 8 : pos + 8 + n]
        pos += 8 + n
    return out


def test_responses_carry_even_length_uids(pacs: PacsServer) -> None:
    """A peer's unpadded (odd-length) UIDs are answered padded, as pynetdicom re-encodes
    them: every element of a command set has an even length (PS3.5 7.1.1)."""
    echo = command(
        elem(0x00000002, VERIFICATION.encode()),  # 17 bytes, no padding
        elem(0x00000100, struct.pack("<H", 0x0030)),
        elem(0x00000110, struct.pack("<H", 1)),
        elem(0x00000800, struct.pack("<H", 0x0101)),
    )
    inst = "1.2.3.4.123"  # 11 bytes
    store = command(
        elem(0x00000002, CT.encode()),
        elem(0x00000100, struct.pack("<H", 0x0001)),
        elem(0x00000110, struct.pack("<H", 2)),
        elem(0x00000700, struct.pack("<H", 0)),
        elem(0x00000800, struct.pack("<H", 0x0001)),
        elem(0x00001000, inst.encode()),
    )
    s, kind, _ = connect(pacs.cfg.dicom_port, associate_rq(store_contexts()))
    with s:
        s.sendall(pdata(1, 0x03, echo))
        kind, body = recv_pdu(s)
        assert kind == 0x04 and status_of(body) == 0
        assert all(len(v) % 2 == 0 for v in _elements(body).values()), _elements(body)
        s.sendall(pdata(3, 0x03, store) + pdata(3, 0x02, _ct_dataset(inst)))
        kind, body = recv_pdu(s)
        assert kind == 0x04 and status_of(body) == 0
        els = _elements(body)
        assert all(len(v) % 2 == 0 for v in els.values()), els
        assert els[0x1000] == uid(inst) and els[0x0002] == uid(CT)
        release(s)


def test_idle_association_is_aborted_after_the_timeout(pacs: PacsServer) -> None:
    s, kind, _ = connect(pacs.cfg.dicom_port)
    with s:
        assert kind == 0x02
        t0 = time.monotonic()
        s.settimeout(TIMEOUT + 3)
        kind, _ = recv_pdu(s)
        took = time.monotonic() - t0
        assert kind == 0x07 and TIMEOUT * 0.8 < took < TIMEOUT + 1.5, (kind, took)
    wait_idle(pacs)


def test_no_thread_or_descriptor_leak_after_abuse(pacs: PacsServer) -> None:
    assert echo_ok(pacs.cfg.dicom_port)
    wait_idle(pacs)
    time.sleep(0.2)
    threads0, fds0 = threading.active_count(), fds()
    for _round in range(2):
        for data in _bad_pdata().values():
            s, kind, _ = connect(pacs.cfg.dicom_port, associate_rq(store_contexts()))
            with s:
                assert kind == 0x02
                s.sendall(data)
                assert closed_or_aborted(s)
        for cut in (3, 30, 100):  # half requests, then gone
            with socket.create_connection(("127.0.0.1", pacs.cfg.dicom_port), timeout=5) as s:
                s.sendall(associate_rq()[:cut])
    wait_idle(pacs)
    deadline = time.monotonic() + 2 * TIMEOUT + 3
    while (threading.active_count() > threads0 or fds() > fds0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads0, (threading.active_count(), threads0)
    assert fds() <= fds0, (fds(), fds0)
