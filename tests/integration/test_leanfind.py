"""The bare-socket worklist C-FIND (dicomkit.dicom.leanscu) against Orthanc, the embedded PACS
and DCMTK wlmscpfs: the same answers as the pynetdicom path, data set for data set, and the
same errors (the unusual cases fall back to pynetdicom)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomkit.dicom import leanscu
from dicomkit.dicom.net import Peer
from dicomkit.dicom.scu import MWL_FIND, _assume_utf8, _c_find, find_worklist
from dicomkit.dicom.worklist import WorklistQuery, answer_to_dict
from dicomkit.errors import AssociationRejected, ConnectionFailed, DicomkitError
from tests.conftest import free_port, start_lab, stop_lab, wait_port
from tests.integration.test_embedded_differential import QUERIES, _identifier, items

pytestmark = pytest.mark.orthanc

__all__ = ["items"]  # the fixture, imported for use here

WORKLIST_QUERIES = [
    WorklistQuery(),
    WorklistQuery(accession="D-04"),
    WorklistQuery(accession="NOPE"),
    WorklistQuery(patient_id="P01"),
    WorklistQuery(patient_name="山田*"),
    WorklistQuery(patient_name="Müller^Zoë"),
    WorklistQuery(modality="CT", date="20260101-20260131"),
    WorklistQuery(station_aet="MR1"),
]


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory, items: Path) -> Iterator[dict[str, Peer]]:
    started = []
    wlm = None
    try:
        native = start_lab(tmp_path_factory.mktemp("raw-native"), "native")
        started.append(native)
        embedded = start_lab(tmp_path_factory.mktemp("raw-embedded"), "embedded")
        started.append(embedded)
        for lab in started:
            for f in items.glob("*.wl"):
                shutil.copy(f, lab.cfg.worklist_dir / f.name)
        out = {
            "Orthanc": Peer("127.0.0.1", native.cfg.dicom_port, native.cfg.pacs_aet),
            "embedded": Peer("127.0.0.1", embedded.cfg.mwl_port, embedded.cfg.pacs_aet),
        }
        exe = shutil.which("wlmscpfs")
        if exe:
            root = tmp_path_factory.mktemp("raw-wlm")
            (root / "WLMSCP").mkdir()
            (root / "WLMSCP" / "lockfile").touch()
            for f in items.glob("*.wl"):
                shutil.copy(f, root / "WLMSCP" / f.name)
            port = free_port()
            wlm = subprocess.Popen([exe, "-dfp", str(root), str(port)])
            wait_port(port, wlm)
            out["wlmscpfs"] = Peer("127.0.0.1", port, "WLMSCP")
        yield out
    finally:
        if wlm is not None:
            wlm.terminate()
            wlm.wait(10)
        for lab in started:
            stop_lab(lab)


def _slow(peer: Peer, identifier: Dataset, aet: str = "DICOMKIT") -> list[Dataset]:
    return list(_c_find(peer, aet, MWL_FIND, identifier, 20, "worklist"))


@pytest.mark.parametrize("server", ["Orthanc", "embedded", "wlmscpfs"])
def test_same_data_sets_as_pynetdicom(peers: dict[str, Peer], server: str) -> None:
    if server not in peers:
        pytest.skip("wlmscpfs not installed")
    peer = peers[server]
    for name, keys in QUERIES:
        fast = leanscu.find(peer, "DICOMKIT", MWL_FIND, _identifier(keys), 20)
        slow = _slow(peer, _identifier(keys))
        assert [_assume_utf8(ds) for ds in fast] == slow, name
    for q in WORKLIST_QUERIES:
        rows = find_worklist(peer, "DICOMKIT", q, 20)
        assert rows == [answer_to_dict(ds) for ds in _slow(peer, q.identifier())], q
    # Read as UTF-8 whether or not the SCP declares it (wlmscpfs does not).
    [row] = find_worklist(peer, "DICOMKIT", WorklistQuery(patient_name="山田*"), 20)
    assert row["patient_name"] == "山田^太郎"


def _error(call: object) -> tuple[type, str, str]:
    assert callable(call)
    with pytest.raises(DicomkitError) as info:
        call()
    return type(info.value), info.value.message, info.value.hint


@pytest.mark.parametrize("server", ["Orthanc", "embedded"])
def test_same_errors_as_pynetdicom(peers: dict[str, Peer], server: str) -> None:
    peer = peers[server]
    q = WorklistQuery(accession="D-04")
    cases = [
        ("ROGUE", peer),  # not allowed to query the worklist: a failure status or an abort
        ("DICOMKIT", Peer(peer.host, peer.port, "WRONG_AET")),  # association rejected
        ("DICOMKIT", Peer(peer.host, free_port(), peer.aet)),  # nothing listens
    ]
    for aet, p in cases:
        new = _error(lambda aet=aet, p=p: find_worklist(p, aet, q, 20))
        old = _error(lambda aet=aet, p=p: _slow(p, q.identifier(), aet))
        if p.aet == "WRONG_AET":
            # The lean path decodes the A-ASSOCIATE-RJ (source 1, reason 7) every time.
            # pynetdicom sometimes reports Orthanc's rejection as a lost connection (Orthanc
            # closes right after the RJ, before pynetdicom's DUL has read it): allowed here.
            assert new[0] is AssociationRejected and "called AE title" in new[2], new
            assert old == new or old[0] is ConnectionFailed, old
            continue
        assert new == old, (aet, p)


def test_silent_peer_fails_within_the_timeout() -> None:
    """A peer that accepts the connection and never answers: the same error as pynetdicom,
    after one timeout (not one per path)."""
    import time

    srv = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        peer = Peer("127.0.0.1", srv.getsockname()[1], "SILENT")
        t0 = time.monotonic()
        new = _error(lambda: find_worklist(peer, "DICOMKIT", WorklistQuery(), 1.0))
        assert time.monotonic() - t0 < 1.9
        old = _error(lambda: list(_c_find(peer, "DICOMKIT", MWL_FIND, Dataset(), 1.0, "x")))
        assert new == old
    finally:
        stop.set()
        t.join(2)
        srv.close()
        for c in conns:
            c.close()
