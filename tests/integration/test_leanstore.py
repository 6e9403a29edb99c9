"""The lean C-STORE sender against DCMTK storescp: byte-faithful, fragmented to the
peer's maximum PDU, and giving way to pynetdicom for what it does not handle."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pynetdicom.dsutils import split_dataset

from dicomkit.dicom import wire
from dicomkit.dicom.leanscu import OutgoingFile, StoreAssociation
from dicomkit.dicom.net import Peer
from dicomkit.dicom.scu import FileResult, collect_files, store_files
from tests.conftest import free_port, need, testdata, wait_port


@pytest.fixture
def storescp_small_pdu(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    exe = need("storescp")
    out = tmp_path / "received"
    out.mkdir()
    port = free_port()
    # -pdu 4096: every data set is cut into many PDVs; +xa: accept every transfer syntax.
    proc = subprocess.Popen(
        [exe, "-aet", "STORESCP", "-pdu", "4096", "-od", str(out), "+xa", str(port)],
        env={"TCP_NODELAY": "1"},
    )
    try:
        wait_port(port, proc)
        yield port, out
    finally:
        proc.terminate()
        proc.wait(10)


FILES = ["CT_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_rle.dcm", "image_dfl.dcm"]


def test_files_arrive_byte_for_byte(storescp_small_pdu: tuple[int, Path]) -> None:
    port, out = storescp_small_pdu
    files = [testdata(n) for n in FILES]
    seen: list[FileResult] = []
    report = store_files(
        Peer("127.0.0.1", port, "STORESCP"), "DICOMKIT", files, progress=seen.append
    )
    assert [r.ok for r in report.results] == [True] * len(FILES), report.to_dict()
    assert len(seen) == len(FILES)
    received = {pydicom.dcmread(p).SOPInstanceUID: p for p in out.iterdir()}
    for f in files:
        sent = pydicom.dcmread(f)
        got = pydicom.dcmread(received[sent.SOPInstanceUID])
        # storescp re-encodes what it writes (drops trailing padding, may fix group
        # lengths): compare element by element, and the pixel data to the byte.
        assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID, f.name
        assert got.PixelData == sent.PixelData, f.name
        tags = {e.tag for e in sent if e.tag.group not in (0xFFFC,) and e.tag.element != 0}
        for tag in tags:
            assert got[tag].value == sent[tag].value, (f.name, tag)


def test_fragmentation_follows_the_peer_maximum(storescp_small_pdu: tuple[int, Path]) -> None:
    port, _ = storescp_small_pdu
    ra = StoreAssociation(Peer("127.0.0.1", port, "STORESCP"), "DICOMKIT", 10)
    f = testdata("CT_small.dcm")
    meta, offset = split_dataset(f)
    ra.open([(str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))])
    try:
        assert ra.client is not None and ra.client.messages.fragment == 4096 - 6
        status, _ = ra.store(OutgoingFile(f, str(meta.MediaStorageSOPClassUID),
                                     str(meta.MediaStorageSOPInstanceUID),
                                     str(meta.TransferSyntaxUID), offset))  # fmt: skip
        assert status == 0x0000
    finally:
        ra.release()


def test_no_peer_is_left_to_the_full_stack() -> None:
    ra = StoreAssociation(Peer("127.0.0.1", free_port(), "STORESCP"), "DICOMKIT", 2)
    with pytest.raises(wire.Unsupported):
        ra.open([("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")])


def test_folder_of_many_files_in_one_association(
    storescp_small_pdu: tuple[int, Path], tmp_path: Path
) -> None:
    port, out = storescp_small_pdu
    src = tmp_path / "src"
    src.mkdir()
    ds = pydicom.dcmread(testdata("CT_small.dcm"))
    for i in range(30):
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(src / f"{i:02d}.dcm")
    report = store_files(Peer("127.0.0.1", port, "STORESCP"), "DICOMKIT", collect_files([src]))
    assert len(report.sent_ok) == 30 and not report.failed
    assert len(list(out.iterdir())) == 30


def _copies(folder: Path, n: int) -> list[Path]:
    folder.mkdir()
    ds = pydicom.dcmread(testdata("CT_small.dcm"))
    for i in range(n):
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"{i:02d}.dcm")
    return collect_files([folder])


def test_parallel_associations_to_a_one_at_a_time_peer(
    storescp_small_pdu: tuple[int, Path], tmp_path: Path
) -> None:
    """storescp (no --fork) serves one association at a time: the others wait their turn.
    The deflated file is left by the bare-socket sender and goes on pynetdicom afterwards."""
    port, out = storescp_small_pdu
    files = _copies(tmp_path / "src", 24) + [testdata(n) for n in FILES]
    seen: list[FileResult] = []
    report = store_files(
        Peer("127.0.0.1", port, "STORESCP"), "DICOMKIT", files, jobs=4, progress=seen.append
    )
    assert not report.failed, report.to_dict()
    assert [r.path for r in report.results] == [str(f) for f in files]  # input order
    assert len(seen) == len(files)
    assert len(list(out.iterdir())) == len(files)


@pytest.fixture
def one_association_scp() -> Iterator[tuple[int, list[str]]]:
    """pynetdicom storage SCP that takes one association at a time and rejects the others
    (A-ASSOCIATE-RJ, transient, local limit exceeded)."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import CTImageStorage

    got: list[str] = []

    def on_store(event: evt.Event) -> int:
        got.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    ae = AE(ae_title="ONEATATIME")
    ae.maximum_associations = 1
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        yield server.socket.getsockname()[1], got  # type: ignore[union-attr]
    finally:
        server.shutdown()


def test_parallel_associations_refused_by_the_peer_go_on_one_afterwards(
    one_association_scp: tuple[int, list[str]], tmp_path: Path
) -> None:
    port, got = one_association_scp
    files = _copies(tmp_path / "src", 16)
    report = store_files(Peer("127.0.0.1", port, "ONEATATIME"), "DICOMKIT", files, jobs=4)
    assert not report.failed, report.to_dict()
    assert len(report.sent_ok) == 16
    assert sorted(got) == sorted(r.sop_instance_uid for r in report.results)


def test_stop_releases_before_the_next_file(
    storescp_small_pdu: tuple[int, Path], tmp_path: Path
) -> None:
    """Ctrl-C during a parallel store sets the stop event: each association releases cleanly
    before its next file (nothing half-sent), and reports nothing for files it did not send."""
    import threading

    from dicomkit.dicom.scu import _prepare, _store_raw

    port, out = storescp_small_pdu
    prepared = [_prepare(f) for f in _copies(tmp_path / "src", 5)]
    stop = threading.Event()
    sent: list[FileResult] = []

    def record(r: FileResult, size: int = 0) -> None:
        sent.append(r)
        stop.set()  # as if Ctrl-C came while the first file was in flight

    left = _store_raw(
        Peer("127.0.0.1", port, "STORESCP"),
        "DICOMKIT",
        prepared,
        10,
        record,
        stop,  # type: ignore[arg-type]
    )
    assert left == [] and len(sent) == 1 and sent[0].ok
    assert len(list(out.iterdir())) == 1


@pytest.mark.parametrize("jobs", [1, 3])
def test_planned_count_matches_progress_calls_with_resume(
    storescp_small_pdu: tuple[int, Path], tmp_path: Path, jobs: int
) -> None:
    """--resume's progress bar: ``planned`` announces exactly the number of ``progress`` calls,
    however many instances the journal holds (most of them not among these files)."""
    port, _ = storescp_small_pdu
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not DICOM")
    files = [testdata(n) for n in FILES] + [not_dicom]
    done = {str(pydicom.dcmread(testdata("CT_small.dcm")).SOPInstanceUID)}
    done |= {f"1.2.3.{i}" for i in range(50)}  # acknowledged earlier, other files
    plans: list[int] = []
    seen: list[FileResult] = []
    report = store_files(Peer("127.0.0.1", port, "STORESCP"), "DICOMKIT", files, jobs=jobs,
                         skip_instances=done, progress=seen.append, planned=plans.append)  # fmt: skip
    assert plans == [len(seen)] == [len(FILES)]  # 4 sent + 1 unreadable; CT_small skipped
    assert len(report.sent_ok) == len(FILES) - 1 and len(report.skipped) == 1


def test_a_folder_that_cannot_be_listed_stops_the_batch_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.walk skips a folder it cannot list without a word; its files would simply not be
    sent. The suite runs as root (every folder is readable), so os.scandir is made to refuse
    one folder, the stand-in for a chmod 000 folder of another user."""
    import os

    from dicomkit.errors import UsageError

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.dcm").write_bytes(b"x")
    locked = tmp_path / "b" / "locked"
    locked.mkdir(parents=True)
    (locked / "two.dcm").write_bytes(b"x")
    assert [p.name for p in collect_files([tmp_path])] == ["one.dcm", "two.dcm"]
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(UsageError) as err:
        collect_files([tmp_path])
    assert f"cannot list folder(s), nothing sent: {locked}: Permission denied" in err.value.message
