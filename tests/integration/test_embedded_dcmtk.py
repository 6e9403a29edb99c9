"""DCMTK as the independent client of the embedded PACS (``python -m dicomkit.pacs``).

One server per module on free ports, with its own configuration so the C-MOVE destination
(a DCMTK storescp) can be a known AE on a free port too.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest

from dicomkit.pacs.index import orthanc_id
from dicomkit.ris.models import OrderIn
from dicomkit.ris.store import OrderStore
from tests.conftest import free_port, need, testdata, wait_port

pytestmark = pytest.mark.dcmtk

AET = "EMBEDDED"

# pydicom's shipped files and the storescu option that proposes each one's transfer syntax.
STORE_FILES = {
    "CT_small.dcm": [],  # explicit VR little endian
    "rtplan.dcm": [],  # implicit VR little endian
    "MR_small_bigendian.dcm": [],  # explicit VR big endian
    "waveform_ecg.dcm": [],  # a non-image storage class
    "image_dfl.dcm": ["-xd"],  # deflated
    "SC_rgb_jpeg_dcmtk.dcm": ["-xy"],  # JPEG baseline
    "JPEG-lossy.dcm": ["-xx"],  # JPEG extended (12 bit)
    "SC_rgb_jpeg_gdcm.dcm": ["-xs"],  # JPEG lossless SV1
    "MR_small_jpeg_ls_lossless.dcm": ["-xt"],  # JPEG-LS lossless
    "GDCMJ2K_TextGBR.dcm": ["-xv"],  # JPEG 2000 lossless
    "JPEG2000.dcm": ["-xw"],  # JPEG 2000
    "MR_small_RLE.dcm": ["-xr"],  # RLE lossless
}


@dataclass
class Server:
    dicom_port: int
    mwl_port: int
    http_port: int
    storescp_port: int
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def worklist_dir(self) -> Path:
        return self.home / "worklists"

    @property
    def storage_dir(self) -> Path:
        return self.home / "storage"


def write_config(home: Path, **over: object) -> tuple[Path, dict]:
    conf = {
        "aet": AET,
        "host": "127.0.0.1",
        "dicom_port": free_port(),
        "mwl_port": free_port(),
        "http_port": free_port(),
        "storage_dir": str(home / "storage"),
        "worklist_dir": str(home / "worklists"),
        "modalities": {
            "dicomkit": {"AET": "DICOMKIT", "Host": "127.0.0.1", "Port": 11112},
            "findscu": {"AET": "FINDSCU", "Host": "127.0.0.1", "Port": 11113},
            "storescp": {"AET": "STORESCP", "Host": "127.0.0.1", "Port": free_port()},
            "noworklist": {
                "AET": "NOWL",
                "Host": "127.0.0.1",
                "Port": 11115,
                "AllowFindWorklist": False,
            },
        },
        "max_associations": 4,
        "network_timeout": 3,
        "max_pdu": 65536,
    }
    conf.update(over)
    (home / "worklists").mkdir(parents=True, exist_ok=True)
    path = home / "server.json"
    path.write_text(json.dumps(conf))
    return path, conf


def start_server(home: Path, max_file_size: int = 0, **over: object) -> Server:
    path, conf = write_config(home, **over)
    log = home / "pacs.log"

    def limit_file_size() -> None:
        # A disk that fills up, without root: writes past the limit fail with EFBIG.
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_size, max_file_size))

    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomkit.pacs", "--config", str(path)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_file_size if max_file_size else None,
        )
    server = Server(
        conf["dicom_port"],
        conf["mwl_port"],
        conf["http_port"],
        conf["modalities"]["storescp"]["Port"],
        home,
        proc,
        log,
    )
    for port in (server.dicom_port, server.mwl_port, server.http_port):
        wait_port(port, proc, log)
    return server


def stop_server(server: Server) -> None:
    server.proc.terminate()
    server.proc.wait(10)


def place_orders(folder: Path, db: Path) -> dict[str, OrderIn]:
    store = OrderStore(db, folder)
    orders = {
        "ACC-1": OrderIn(
            patient_id="P1",
            patient_name="Müller^Zoë",
            accession="ACC-1",
            modality="CR",
            study_desc="XR CHEST",
            sex="F",
            scheduled_date="20260105",
            scheduled_time="0930",
        ),
        "ACC-2": OrderIn(
            patient_id="P2",
            patient_name="山田^太郎",
            accession="ACC-2",
            modality="CT",
            study_desc="CT HEAD",
            scheduled_date="20260110",
            scheduled_time="1400",
        ),
        "ACC-3": OrderIn(
            patient_id="P3",
            patient_name="DOE^JANE",
            accession="ACC-3",
            modality="MR",
            study_desc="MR KNEE",
            scheduled_date="20260201",
            scheduled_time="0800",
            station_aet="MR1",
        ),
    }
    for o in orders.values():
        store.create(o)
    return orders


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("embedded")
    (home / "worklists").mkdir()
    place_orders(home / "worklists", home / "ris.sqlite3")
    # A truncated item planted among good ones: skipped and logged, never fatal.
    good = next((home / "worklists").glob("*.wl")).read_bytes()
    (home / "worklists" / ("f" * 32 + ".wl")).write_bytes(good[: len(good) // 2])
    srv = start_server(home)
    try:
        yield srv
    finally:
        stop_server(srv)


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        encoding="utf-8",
        errors="replace",
    )


def findscu_w(server: Server, *keys: str, aet: str = "FINDSCU") -> tuple[int, list[str], str]:
    """findscu -W: (exit code, matched accession numbers, output)."""
    exe = need("findscu")
    args = [exe, "-v", "-W", "-aet", aet, "-aec", AET]
    for k in ("AccessionNumber", "PatientName", *keys):
        args += ["-k", k]
    p = run(*args, "127.0.0.1", str(server.mwl_port))
    out = p.stdout + p.stderr
    accs = []
    for block in out.split("Find Response:")[1:]:
        for line in block.splitlines():
            if "AccessionNumber" in line and "[" in line:
                accs.append(line.split("[", 1)[1].split("]", 1)[0].strip())
    return p.returncode, sorted(accs), out


# ---- association rules ----------------------------------------------------------------------


def test_echoscu(server: Server) -> None:
    p = run(need("echoscu"), "-aet", "ANYONE", "-aec", AET, "127.0.0.1", str(server.dicom_port))
    assert p.returncode == 0, p.stderr
    p = run(need("echoscu"), "-aet", "ANYONE", "-aec", AET, "127.0.0.1", str(server.mwl_port))
    assert p.returncode == 0, p.stderr


def test_wrong_called_ae_is_rejected(server: Server) -> None:
    p = run(need("echoscu"), "-v", "-aet", "FINDSCU", "-aec", "WRONG", "127.0.0.1",
            str(server.dicom_port))  # fmt: skip
    assert p.returncode != 0
    assert "Called AE Title Not Recognized" in p.stdout + p.stderr


def test_worklist_refused_for_unknown_or_unauthorised_ae_but_echo_works(server: Server) -> None:
    for aet in ("NOBODY", "NOWL"):
        _code, accs, out = findscu_w(server, aet=aet)
        assert accs == [], out
        assert "UnableToProcess" in out or "Failed" in out, out
        p = run(need("echoscu"), "-aet", aet, "-aec", AET, "127.0.0.1", str(server.mwl_port))
        assert p.returncode == 0
    # AE titles compare case-insensitively, as in Orthanc (StrictAetComparison false).
    assert findscu_w(server, aet="findscu")[1] == ["ACC-1", "ACC-2", "ACC-3"]


# ---- worklist -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ((), ["ACC-1", "ACC-2", "ACC-3"]),
        (("AccessionNumber=ACC-2",), ["ACC-2"]),
        (("PatientID=P3",), ["ACC-3"]),
        (("PatientName=DOE*",), ["ACC-3"]),
        (("PatientName=d?e^jane",), ["ACC-3"]),  # PN: case-insensitive, like Orthanc
        (("ScheduledProcedureStepSequence[0].Modality=C?",), ["ACC-1", "ACC-2"]),
        (("ScheduledProcedureStepSequence[0].ScheduledStationAETitle=MR1",), ["ACC-3"]),
        (("ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260110",), ["ACC-2"]),
        (("ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260101-20260131",),
         ["ACC-1", "ACC-2"]),
        (("ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20260106-",),
         ["ACC-2", "ACC-3"]),
        (("ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=-20260105",),
         ["ACC-1"]),
        (("ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=0900-1200",),
         ["ACC-1"]),
        (("PatientSex=F",), ["ACC-1"]),
        (("AccessionNumber=NOPE",), []),
    ],
)  # fmt: skip
def test_findscu_worklist_keys(server: Server, keys: tuple[str, ...], expected: list[str]) -> None:
    code, accs, out = findscu_w(server, *keys)
    assert code == 0, out
    assert accs == expected, out


def test_worklist_returns_only_requested_keys_in_utf8(server: Server) -> None:
    exe = need("findscu")
    out_dir = server.home / "mwl-answers"
    out_dir.mkdir(exist_ok=True)
    p = run(exe, "-W", "-aet", "FINDSCU", "-aec", AET, "-k", "SpecificCharacterSet=ISO_IR 192",
            "-k", "PatientName=山田*", "-k", "ScheduledProcedureStepSequence[0].Modality",
            "-X", "-od", str(out_dir), "127.0.0.1", str(server.mwl_port))  # fmt: skip
    assert p.returncode == 0, p.stderr
    files = list(out_dir.glob("*.dcm"))
    assert len(files) == 1
    ds = pydicom.dcmread(files[0])
    assert str(ds.PatientName) == "山田^太郎"
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    keys = {e.keyword for e in ds}
    assert keys == {"SpecificCharacterSet", "PatientName", "ScheduledProcedureStepSequence"}
    assert [e.keyword for e in ds.ScheduledProcedureStepSequence[0]] == ["Modality"]
    assert ds.ScheduledProcedureStepSequence[0].Modality == "CT"


def test_worklist_follows_the_folder_and_skips_the_corrupt_file(server: Server) -> None:
    status = httpx.get(f"{server.http}/status").json()
    assert status["counts"]["worklist_items"] == 3  # the truncated file is not an item
    assert "skipping unreadable worklist file" in server.log.read_text()
    store = OrderStore(server.home / "ris.sqlite3", server.worklist_dir)
    store.create(
        OrderIn(patient_id="P4", patient_name="NEW^ONE", accession="ACC-4", modality="US",
                study_desc="US ABD", scheduled_date="20260301", scheduled_time="1000")
    )  # fmt: skip
    assert findscu_w(server, "AccessionNumber=ACC-4")[1] == ["ACC-4"]  # seen at once
    store.delete("ACC-4")
    assert findscu_w(server, "AccessionNumber=ACC-4")[1] == []  # gone at once


# ---- storage --------------------------------------------------------------------------------


def _dataset_bytes(raw: bytes) -> bytes:
    """The data set after the file meta group (PS3.10 7.1), as sent on the wire."""
    pos = 132
    meta_len = struct.unpack_from("<I", raw, pos + 8)[0]  # (0002,0000) group length
    return raw[pos + 12 + meta_len :]


def unique_copy(name: str, folder: Path) -> Path:
    """A copy of a shipped file with its own SOP Instance UID (several shipped files share
    one). pydicom rewrites the elements; encapsulated pixel data is copied, not decoded."""
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(testdata(name))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    out = folder / name
    ds.save_as(out, enforce_file_format=True)
    return out


def test_storescu_stores_every_transfer_syntax_as_received(server: Server, tmp_path: Path) -> None:
    exe = need("storescu")
    sent = {name: unique_copy(name, tmp_path) for name in STORE_FILES}
    for name, path in sent.items():
        p = run(exe, "-v", *STORE_FILES[name], "-aet", "MODALITY", "-aec", AET, "127.0.0.1",
                str(server.dicom_port), str(path))  # fmt: skip
        assert p.returncode == 0, f"{name}: {p.stdout}{p.stderr}"
        assert "Received Store Response (Success)" in p.stdout + p.stderr, f"{name}: {p.stderr}"
    stored = {
        pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f
        for f in (server.storage_dir / "files").glob("*/*.dcm")
    }
    for name, src in sent.items():
        ds = pydicom.dcmread(src)
        f = stored[ds.SOPInstanceUID]
        assert ds.SOPInstanceUID not in f.name  # named from a hash, never from a UID
        kept = pydicom.dcmread(f)
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            # The encapsulated pixel data arrived and stayed byte for byte: nothing decoded.
            assert kept.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID, name
            assert kept.PixelData == ds.PixelData, name
    assert not list((server.storage_dir / "files").glob("*/.*.tmp"))


def test_instance_without_study_uid_is_refused_and_not_kept(server: Server) -> None:
    src = testdata("SC_rgb_jls_lossy_line.dcm")  # JPEG-LS near-lossless, no Study/Series UID
    before = set((server.storage_dir / "files").glob("*/*"))
    p = run(need("storescu"), "-v", "-xu", "-aet", "MODALITY", "-aec", AET, "127.0.0.1",
            str(server.dicom_port), str(src))  # fmt: skip
    # Orthanc 1.10 refuses it too (with 0xA700); PS3.4 B.2.3 names this 0xA900.
    assert "DataSetDoesNotMatchSOPClass" in p.stdout + p.stderr
    assert set((server.storage_dir / "files").glob("*/*")) == before


def test_stored_bytes_are_the_bytes_sent(server: Server) -> None:
    """pynetdicom sends a file's data set verbatim (chunked mode): the stored file holds
    exactly those bytes after its file meta."""
    from pynetdicom import AE, _config

    src = testdata("MR_small_bigendian.dcm")
    ds = pydicom.dcmread(src, stop_before_pixels=True)
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
    old, _config.STORE_SEND_CHUNKED_DATASET = _config.STORE_SEND_CHUNKED_DATASET, True
    try:
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=AET)
        assert assoc.is_established
        status = assoc.send_c_store(src)
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    assert status.Status in (0x0000,)
    stored = [
        f
        for f in (server.storage_dir / "files").glob("*/*.dcm")
        if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID == ds.SOPInstanceUID
    ]
    assert len(stored) == 1
    assert _dataset_bytes(stored[0].read_bytes()) == _dataset_bytes(src.read_bytes())


def test_duplicate_keeps_the_first_copy(server: Server) -> None:
    exe = need("storescu")
    src = testdata("CT_small.dcm")
    for _ in range(2):
        p = run(exe, "-v", "-aet", "MODALITY", "-aec", AET, "127.0.0.1", str(server.dicom_port),
                str(src))  # fmt: skip
        assert "Received Store Response (Success)" in p.stdout + p.stderr  # like Orthanc
    uid = pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID
    copies = [
        f
        for f in (server.storage_dir / "files").glob("*/*.dcm")
        if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID == uid
    ]
    assert len(copies) == 1
    assert f"duplicate SOP Instance UID {uid}" in server.log.read_text()


# ---- query / retrieve -----------------------------------------------------------------------


def _find(server: Server, model: str, *keys: str) -> str:
    p = run(need("findscu"), "-v", model, "-aet", "FINDSCU", "-aec", AET,
            *[a for k in keys for a in ("-k", k)], "127.0.0.1", str(server.dicom_port))  # fmt: skip
    assert p.returncode == 0, p.stderr
    return p.stdout + p.stderr


def test_findscu_study_and_patient_root(server: Server) -> None:
    test_duplicate_keeps_the_first_copy(server)  # CT_small is stored
    ct = pydicom.dcmread(testdata("CT_small.dcm"), stop_before_pixels=True)
    out = _find(server, "-S", "QueryRetrieveLevel=STUDY", "PatientID=1CT1", "StudyInstanceUID",
                "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances")  # fmt: skip
    assert out.count("Find Response:") == 1, out
    assert ct.StudyInstanceUID in out and "[CT]" in out and "[1 ]" in out
    out = _find(server, "-S", "QueryRetrieveLevel=SERIES", f"StudyInstanceUID={ct.StudyInstanceUID}",
                "SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances")  # fmt: skip
    assert ct.SeriesInstanceUID in out
    out = _find(server, "-S", "QueryRetrieveLevel=IMAGE", f"SeriesInstanceUID={ct.SeriesInstanceUID}",
                "SOPInstanceUID", "SOPClassUID")  # fmt: skip
    assert ct.SOPInstanceUID in out and "CTImageStorage" in out
    out = _find(server, "-P", "QueryRetrieveLevel=PATIENT", "PatientName=CompressedSamples^CT*",
                "PatientID", "NumberOfPatientRelatedStudies")  # fmt: skip
    assert "[1CT1]" in out
    out = _find(server, "-S", "QueryRetrieveLevel=STUDY", "StudyDate=20040101-20041231",
                "PatientID=1CT1", "StudyInstanceUID")  # fmt: skip
    assert out.count("Find Response:") == 1
    out = _find(server, "-S", "QueryRetrieveLevel=STUDY", "StudyDate=-20031231",
                "PatientID=1CT1", "StudyInstanceUID")  # fmt: skip
    assert "Find Response:" not in out


@pytest.fixture
def storescp(server: Server, tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "received"
    out.mkdir()
    proc = subprocess.Popen(
        [need("storescp"), "-aet", "STORESCP", "-od", str(out), "+xa",
         str(server.storescp_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(server.storescp_port, proc, server.log)
        yield out
    finally:
        proc.terminate()
        proc.wait(10)


def test_movescu_to_a_known_storescp(server: Server, storescp: Path) -> None:
    jp = pydicom.dcmread(testdata("SC_rgb_jpeg_dcmtk.dcm"), stop_before_pixels=True)
    p = run(need("storescu"), "-xy", "-aet", "MODALITY", "-aec", AET, "127.0.0.1",
            str(server.dicom_port), str(testdata("SC_rgb_jpeg_dcmtk.dcm")))  # fmt: skip
    assert p.returncode == 0, p.stderr
    p = run(need("movescu"), "-v", "-S", "-aet", "FINDSCU", "-aec", AET, "-aem", "STORESCP",
            "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={jp.StudyInstanceUID}",
            "127.0.0.1", str(server.dicom_port))  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    got = [pydicom.dcmread(f, stop_before_pixels=True) for f in storescp.iterdir()]
    assert jp.SOPInstanceUID in {d.SOPInstanceUID for d in got}
    # Sent as stored: still JPEG baseline, nothing decompressed on the way.
    same = next(d for d in got if d.SOPInstanceUID == jp.SOPInstanceUID)
    assert same.file_meta.TransferSyntaxUID == jp.file_meta.TransferSyntaxUID


def test_movescu_to_an_unknown_ae_is_refused(server: Server) -> None:
    p = run(need("movescu"), "-v", "-S", "-aet", "FINDSCU", "-aec", AET, "-aem", "STRANGER",
            "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=1.2.3",
            "127.0.0.1", str(server.dicom_port))  # fmt: skip
    assert "Refused: MoveDestinationUnknown" in p.stdout + p.stderr  # 0xA801


def test_getscu(server: Server, tmp_path: Path) -> None:
    test_duplicate_keeps_the_first_copy(server)
    ct = pydicom.dcmread(testdata("CT_small.dcm"), stop_before_pixels=True)
    p = run(need("getscu"), "-v", "-S", "-aet", "FINDSCU", "-aec", AET, "-od", str(tmp_path),
            "-k", "QueryRetrieveLevel=SERIES", "-k", f"SeriesInstanceUID={ct.SeriesInstanceUID}",
            "127.0.0.1", str(server.dicom_port))  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    got = [pydicom.dcmread(f) for f in tmp_path.glob("*")]
    assert ct.SOPInstanceUID in {d.SOPInstanceUID for d in got}
    assert {d.SeriesInstanceUID for d in got} == {ct.SeriesInstanceUID}


# ---- HTTP -----------------------------------------------------------------------------------


def test_rest_subset_uses_orthanc_ids(server: Server) -> None:
    test_duplicate_keeps_the_first_copy(server)
    ct = pydicom.dcmread(testdata("CT_small.dcm"), stop_before_pixels=True)
    study_id = orthanc_id(ct.PatientID, ct.StudyInstanceUID)
    # Checked against Orthanc 1.10.1 for this very file.
    assert study_id == "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
    with httpx.Client(base_url=server.http, timeout=5) as http:
        assert study_id in http.get("/studies").json()
        study = http.get(f"/studies/{study_id}").json()
        assert study["MainDicomTags"]["StudyInstanceUID"] == ct.StudyInstanceUID
        assert study["PatientMainDicomTags"]["PatientID"] == "1CT1"
        assert study["Series"] == [orthanc_id(ct.PatientID, ct.StudyInstanceUID,
                                              ct.SeriesInstanceUID)]  # fmt: skip
        found = http.post("/tools/find", json={"Level": "Study", "Query": {"PatientID": "1CT1"}})
        assert found.json() == [study_id]
        none = http.post("/tools/find", json={"Level": "Study", "Query": {"AccessionNumber": "X"}})
        assert none.json() == []
        system = http.get("/system").json()
        assert system["DicomAet"] == AET and system["DicomPort"] == server.dicom_port
        stats = http.get("/statistics").json()
        assert stats["CountInstances"] >= 1 and stats["CountStudies"] >= 1
        assert http.get("/studies/nope").status_code == 404
        assert http.delete(f"/studies/{study_id}").status_code == 405  # read-only


# ---- bounded resources ----------------------------------------------------------------------


def test_oversized_pdu_is_dropped_and_the_server_lives_on(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.dicom_port), timeout=5) as s:
        # An A-ASSOCIATE-RQ header claiming 100 MB: the server must not buffer it.
        s.sendall(struct.pack(">BBL", 0x01, 0, 100_000_000) + b"\0" * 1000)
        s.settimeout(5)
        try:
            data = s.recv(100)
        except (ConnectionResetError, TimeoutError):
            data = b""
        assert data == b"" or data[0] in (0x03, 0x07)  # closed, rejected or aborted
    assert "PDU" in server.log.read_text()
    test_echoscu(server)


def test_idle_peer_is_dropped_after_the_network_timeout(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.dicom_port), timeout=10) as s:
        t0 = time.monotonic()
        try:
            data = s.recv(100)  # we send nothing: the server must give up (3 s configured)
        except ConnectionResetError:
            data = b""
        waited = time.monotonic() - t0
    assert data == b"" or data[0] == 0x07  # closed or A-ABORT
    assert waited < 9


def test_association_limit(server: Server) -> None:
    from pynetdicom import AE

    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context("1.2.840.10008.1.1")
    held = [ae.associate("127.0.0.1", server.dicom_port, ae_title=AET) for _ in range(4)]
    try:
        assert all(a.is_established for a in held)
        extra = ae.associate("127.0.0.1", server.dicom_port, ae_title=AET)
        assert extra.is_rejected  # PS3.8 A-ASSOCIATE-RJ: local limit exceeded
    finally:
        for a in held:
            a.release()
    for _ in range(50):  # released associations free their slots
        again = ae.associate("127.0.0.1", server.dicom_port, ae_title=AET)
        if again.is_established:
            again.release()
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the association slots were not freed")


def test_full_disk_answers_out_of_resources_and_leaves_nothing(tmp_path: Path) -> None:
    import numpy as np
    from pydicom.uid import generate_uid

    srv = start_server(tmp_path, max_file_size=2 * 1024 * 1024)
    try:
        big = pydicom.dcmread(testdata("CT_small.dcm"))
        big.SOPInstanceUID = big.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        big.Rows = big.Columns = 1100
        big.PixelData = np.zeros((1100, 1100), dtype=np.uint16).tobytes()  # 2.4 MB
        path = tmp_path / "big.dcm"
        big.save_as(path, enforce_file_format=True)
        store = [need("storescu"), "-v", "-aet", "MODALITY", "-aec", AET, "127.0.0.1",
                 str(srv.dicom_port)]  # fmt: skip
        p = run(*store, str(path))
        assert "Refused: OutOfResources" in p.stdout + p.stderr  # 0xA700
        files = [f for f in (srv.storage_dir / "files").rglob("*") if f.is_file()]
        assert files == []  # no partial file, no leftover .tmp
        p = run(*store, str(testdata("CT_small.dcm")))  # a small one still fits
        assert "Received Store Response (Success)" in p.stdout + p.stderr
        assert "storage full" in srv.log.read_text()
    finally:
        stop_server(srv)
