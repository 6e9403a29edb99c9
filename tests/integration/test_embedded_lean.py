"""The embedded PACS's lean DIMSE path (pacs/lean.py) and its dispatch: echo, store and
worklist and Q/R find served on a bare socket, everything else by pynetdicom on the same port.

The server runs in-process here so each test can see which path served an association.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicomkit.dicom import leanscu, wire
from dicomkit.dicom.net import Peer
from dicomkit.pacs import lean
from dicomkit.pacs.server import PacsServer
from dicomkit.pacs.settings import Modality
from tests.conftest import need, start_pacs, testdata
from tests.integration.test_embedded_dcmtk import place_orders

pytestmark = [pytest.mark.dcmtk, pytest.mark.timeout(120)]

AET = "LEANPACS"
MWL = "1.2.840.10008.5.1.4.31"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


class Counter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        orig = lean.LeanAssociation.run

        def run(assoc: Any) -> None:
            self.n += 1
            orig(assoc)

        monkeypatch.setattr(lean.LeanAssociation, "run", run)


def make_server(home: Path) -> PacsServer:
    return cast(
        PacsServer,
        start_pacs(
            home,
            AET,
            modalities={
                "dicomkit": Modality("DICOMKIT", "127.0.0.1", 11112),
                "findscu": Modality("FINDSCU", "127.0.0.1", 11113),
            },
            max_associations=4,
            network_timeout=3,
        ),
    )


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PacsServer]:
    home = tmp_path_factory.mktemp("lean")
    (home / "worklists").mkdir()
    place_orders(home / "worklists", home / "ris.sqlite3")
    srv = make_server(home)
    srv.worklist.refresh()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def count(monkeypatch: pytest.MonkeyPatch) -> Counter:
    return Counter(monkeypatch)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


def wait_idle(pacs: PacsServer, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while pacs.lean_active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pacs.lean_active, "a lean association still holds its slot"


# ---- the dispatch decision ------------------------------------------------------------------


def test_dispatch_decision(pacs: PacsServer) -> None:
    study_move = "1.2.840.10008.5.1.4.1.2.2.2"
    for sop, ours in ((MWL, True), ("1.2.840.10008.1.1", True), (STUDY_FIND, True),
                      (study_move, False)):  # fmt: skip
        rq = lean.parse_associate_rq(associate_rq(AET, "X", sop)[6:])
        assert rq is not None and rq.calling == "X" and rq.max_pdu == wire.MAX_PDU
        assert all(ab in pacs.lean_contexts for ab, _ in rq.contexts.values()) is ours
    # Anything odd goes to pynetdicom: a bad protocol version, a truncated item, role selection.
    body = associate_rq(AET, "X", MWL)[6:]
    assert lean.parse_associate_rq(b"\x00\x02" + body[2:]) is None
    assert lean.parse_associate_rq(body[:-3]) is None
    role = struct.pack(">BBH", 0x54, 0, 4) + b"\0\x00\x01\x01"
    assert lean.parse_associate_rq(body + role) is None


# ---- DCMTK through the lean path ------------------------------------------------------------


def test_echoscu_both_ports(pacs: PacsServer, count: Counter) -> None:
    for port in (pacs.cfg.dicom_port, pacs.cfg.mwl_port):
        p = run(need("echoscu"), "-aet", "ANYONE", "-aec", AET, "127.0.0.1", str(port))
        assert p.returncode == 0, p.stderr
    assert count.n == 2


def test_wrong_called_ae_rejected_like_pynetdicom(pacs: PacsServer, count: Counter) -> None:
    p = run(need("echoscu"), "-v", "-aec", "WRONG", "127.0.0.1", str(pacs.cfg.dicom_port))
    assert p.returncode != 0 and "Called AE Title Not Recognized" in p.stdout + p.stderr
    assert count.n == 1


def test_storescu_sop_classes_and_transfer_syntaxes(
    pacs: PacsServer, count: Counter, tmp_path: Path
) -> None:
    files = {
        "CT_small.dcm": [],
        "rtplan.dcm": [],
        "MR_small_bigendian.dcm": [],
        "waveform_ecg.dcm": [],
        "image_dfl.dcm": ["-xd"],
        "SC_rgb_jpeg_dcmtk.dcm": ["-xy"],
    }
    for name, opts in files.items():
        p = run(need("storescu"), *opts, "-aec", AET, "127.0.0.1", str(pacs.cfg.dicom_port),
                str(testdata(name)))  # fmt: skip
        assert p.returncode == 0, (name, p.stdout + p.stderr)
    # One association, several SOP classes and transfer syntaxes.
    several = [str(testdata(n)) for n in ("CT_small.dcm", "rtplan.dcm", "waveform_ecg.dcm")]
    p = run(need("storescu"), "-aec", AET, "127.0.0.1", str(pacs.cfg.dicom_port), *several)
    assert p.returncode == 0, p.stdout + p.stderr
    assert count.n == len(files) + 1
    for name in files:
        ds = pydicom.dcmread(testdata(name))
        rel = pacs.index.instance_path(ds.SOPInstanceUID)
        assert rel is not None, name
        # (byte-for-byte storage: test_embedded_dcmtk.test_stored_bytes_are_the_bytes_sent)
        back = pydicom.dcmread(pacs.storage.absolute(rel))
        assert back.SOPInstanceUID == ds.SOPInstanceUID and back.SOPClassUID == ds.SOPClassUID


def test_findscu_worklist(pacs: PacsServer, count: Counter) -> None:
    p = run(need("findscu"), "-W", "-aet", "FINDSCU", "-aec", AET, "-k", "AccessionNumber",
            "-k", "PatientName", "127.0.0.1", str(pacs.cfg.mwl_port))  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert out.count("ACC-") >= 3, out
    p = run(need("findscu"), "-v", "-W", "-aet", "NOBODY", "-aec", AET, "-k", "AccessionNumber",
            "127.0.0.1", str(pacs.cfg.mwl_port))  # fmt: skip
    assert "ACC-" not in p.stdout + p.stderr
    assert "Failed: UnableToProcess" in p.stdout + p.stderr  # 0xC000, as before
    assert count.n == 2


def test_dicomkit_worklist_client_is_served_lean(pacs: PacsServer, count: Counter) -> None:
    query = Dataset()
    query.AccessionNumber = "ACC-2"
    query.PatientName = ""
    peer = Peer("127.0.0.1", pacs.cfg.mwl_port, AET)
    answers = leanscu.find(peer, "DICOMKIT", MWL, query, 10)
    assert answers is not None and [a.AccessionNumber for a in answers] == ["ACC-2"]
    assert str(answers[0].PatientName) == "山田^太郎"
    assert count.n == 1


# ---- Q/R: C-FIND lean, C-MOVE and C-GET with pynetdicom on the same port ---------------------


def test_qr_find_is_lean_move_get_go_to_pynetdicom(
    pacs: PacsServer, count: Counter, tmp_path: Path
) -> None:
    ct = pydicom.dcmread(testdata("CT_small.dcm"), stop_before_pixels=True)
    p = run(need("storescu"), "-aec", AET, "127.0.0.1", str(pacs.cfg.dicom_port),
            str(testdata("CT_small.dcm")))  # fmt: skip
    assert p.returncode == 0
    assert count.n == 1
    p = run(need("findscu"), "-S", "-aet", "FINDSCU", "-aec", AET,
            "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=1CT1", "-k", "StudyInstanceUID",
            "127.0.0.1", str(pacs.cfg.dicom_port))  # fmt: skip
    assert p.returncode == 0 and ct.StudyInstanceUID in p.stdout + p.stderr, p.stdout + p.stderr
    assert count.n == 2
    p = run(need("getscu"), "-S", "-aet", "FINDSCU", "-aec", AET, "-od", str(tmp_path),
            "-k", "QueryRetrieveLevel=SERIES", "-k", f"SeriesInstanceUID={ct.SeriesInstanceUID}",
            "127.0.0.1", str(pacs.cfg.dicom_port))  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert ct.SOPInstanceUID in {pydicom.dcmread(f).SOPInstanceUID for f in tmp_path.glob("*")}
    # C-MOVE to an unknown destination: pynetdicom's handler answers (refused), nothing lean.
    p = run(need("movescu"), "-S", "-aet", "FINDSCU", "-aec", AET, "-aem", "NOSUCHAE",
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={ct.StudyInstanceUID}",
            "127.0.0.1", str(pacs.cfg.dicom_port))  # fmt: skip
    assert "MoveDestinationUnknown" in p.stdout + p.stderr, p.stdout + p.stderr
    assert count.n == 2


# ---- raw sockets: cancel, PDU sizes, malformed input -------------------------------------------


def associate_rq(called: str, calling: str, abstract: str) -> bytes:
    a = wire.Associate(called, calling, contexts={1: (abstract, list(leanscu.PROPOSED))})
    return wire.encode_associate(wire.ASSOCIATE_RQ, a)


def c_find_rq(sop_class: str) -> bytes:
    return wire.encode_command({
        wire.AFFECTED_SOP_CLASS: sop_class, wire.COMMAND_FIELD: wire.C_FIND_RQ,
        wire.MESSAGE_ID: 1, wire.PRIORITY: 2, wire.DATA_SET_TYPE: 0,
    })  # fmt: skip


def _associate(port: int, abstract: str, max_pdu: int, calling: str = "DICOMKIT") -> socket.socket:
    rq = bytearray(associate_rq(AET, calling, abstract))
    at = rq.index(struct.pack(">BBH", 0x51, 0, 4)) + 4
    rq[at : at + 4] = struct.pack(">I", max_pdu)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(bytes(rq))
    link = wire.Link(s, 10)
    pdu_type, _ = link.recv()
    assert pdu_type == 0x02
    _LINKS[s.fileno()] = link
    return s


_LINKS: dict[int, Any] = {}


def link_of(s: socket.socket) -> Any:
    return _LINKS[s.fileno()]


def _pdv(control: int, data: bytes) -> bytes:
    return struct.pack(">BBIIBB", 0x04, 0, len(data) + 6, len(data) + 2, 1, control) + data


def _cancel(msg_id: int) -> bytes:
    return wire.encode_command({wire.COMMAND_FIELD: wire.C_CANCEL_RQ, wire.RESPONDED_TO: msg_id,
                                wire.DATA_SET_TYPE: wire.NO_DATA_SET})  # fmt: skip


def _responses(s: socket.socket) -> list[tuple[int, bytes | None]]:
    messages = wire.Messages(link_of(s), 16384, {1})
    out: list[tuple[int, bytes | None]] = []
    while True:
        msg = messages.read()
        status = msg.command.us(wire.STATUS)
        assert status is not None
        out.append((status, msg.data))
        if status not in (0xFF00, 0xFF01):
            return out


def _all_items() -> bytes:
    q = Dataset()
    q.AccessionNumber = ""
    q.PatientName = ""
    return leanscu._encode(q, True)


def test_c_cancel_between_answers(pacs: PacsServer, count: Counter) -> None:
    s = _associate(pacs.cfg.mwl_port, MWL, 16384)
    try:
        # Request and cancel in one write: the cancel is waiting before the first answer.
        s.sendall(_pdv(0x03, c_find_rq(MWL)) + _pdv(0x02, _all_items()) + _pdv(0x03, _cancel(1)))
        rsps = _responses(s)
        assert rsps[-1][0] == 0xFE00 and len(rsps) - 1 < 3, rsps
        # The association goes on: the same query uncancelled returns every item.
        s.sendall(_pdv(0x03, c_find_rq(MWL)) + _pdv(0x02, _all_items()))
        rsps = _responses(s)
        assert rsps[-1][0] == 0x0000 and len(rsps) - 1 >= 3
        s.sendall(struct.pack(">BBI", 0x05, 0, 4) + bytes(4))
        assert link_of(s).recv()[0] == 0x06
    finally:
        s.close()
    assert count.n == 1
    wait_idle(pacs)


def test_peer_max_pdu_4096_is_honoured(pacs: PacsServer, tmp_path: Path) -> None:
    # An item whose answer is bigger than 4096 bytes: a long Patient Comments.
    item = pydicom.dcmread(next(pacs.cfg.worklist_dir.glob("*.wl")))
    item.AccessionNumber = "ACC-BIG"
    item.PatientComments = "x" * 10000
    item.save_as(pacs.cfg.worklist_dir / ("b" * 32 + ".wl"), enforce_file_format=True)
    pacs.worklist.refresh()
    q = Dataset()
    q.AccessionNumber = "ACC-BIG"
    q.PatientComments = ""
    s = _associate(pacs.cfg.mwl_port, MWL, 4096)
    sizes: list[int] = []
    link = link_of(s)
    orig = link.recv

    def recv() -> tuple[int, bytes]:
        pdu = orig()
        sizes.append(len(pdu[1]))
        return pdu

    link.recv = recv
    try:
        s.sendall(_pdv(0x03, c_find_rq(MWL)) + _pdv(0x02, leanscu._encode(q, True)))
        rsps = _responses(s)
    finally:
        s.close()
    assert rsps[-1][0] == 0x0000 and len(rsps) == 2
    answer = leanscu._decode(rsps[0][1] or b"", True)
    assert answer.PatientComments == "x" * 10000
    assert max(sizes) <= 4096 and len(sizes) > 3, sizes


@pytest.mark.parametrize(
    "junk",
    [
        struct.pack(">BBI", 0x09, 0, 4) + bytes(4),  # unknown PDU type
        struct.pack(">BBI", 0x04, 0, 100) + bytes(10),  # truncated P-DATA, then close
        struct.pack(">BBI", 0x04, 0, 8) + struct.pack(">IBB", 50, 1, 3) + b"ab",  # PDV > PDU
        struct.pack(">BBI", 0x04, 0, 0xFFFFFFFF),  # a 4 GiB PDU announced
        _pdv(0x03, b"\x00\x00\x00\x00\xff"),  # a broken command set
        _pdv(0x03, c_find_rq(MWL)) + b"\x07\x00",  # half an A-ABORT header, then close
    ],
)
def test_garbage_after_association_aborts_and_frees_the_slot(
    pacs: PacsServer, count: Counter, junk: bytes
) -> None:
    s = _associate(pacs.cfg.dicom_port, "1.2.840.10008.1.1", 16384)
    got = b""
    try:
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    finally:
        s.close()
    assert got in (b"", bytes([7, 0, 0, 0, 0, 4, 0, 0, 2, 0])), got
    assert count.n == 1
    wait_idle(pacs)
    p = run(need("echoscu"), "-aec", AET, "127.0.0.1", str(pacs.cfg.dicom_port))
    assert p.returncode == 0


def test_association_limit_counts_lean_and_pynetdicom(pacs: PacsServer) -> None:
    held = [_associate(pacs.cfg.dicom_port, "1.2.840.10008.1.1", 16384) for _ in range(4)]
    try:
        p = run(need("echoscu"), "-v", "-aec", AET, "127.0.0.1", str(pacs.cfg.dicom_port))
        assert p.returncode != 0 and "Local Limit Exceeded" in p.stdout + p.stderr
        p = run(need("findscu"), "-S", "-v", "-aec", AET, "-k", "QueryRetrieveLevel=STUDY",
                "127.0.0.1", str(pacs.cfg.dicom_port))  # fmt: skip
        assert "Local Limit Exceeded" in p.stdout + p.stderr
    finally:
        for s in held:
            s.close()
    wait_idle(pacs)


def test_kill_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMKIT_LEAN", "0")
    count = Counter(monkeypatch)
    srv = make_server(tmp_path)
    try:
        p = run(need("echoscu"), "-aec", AET, "127.0.0.1", str(srv.cfg.dicom_port))
        assert p.returncode == 0, p.stderr
        p = run(need("storescu"), "-aec", AET, "127.0.0.1", str(srv.cfg.dicom_port),
                str(testdata("CT_small.dcm")))  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert srv.index.counts()["instances"] == 1
    finally:
        srv.stop()
    assert count.n == 0
