"""Storage and index: hash names, durable writes, a full disk leaves nothing behind,
duplicates keep the first copy, Orthanc's ids, and the index rebuilt from the files."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pydicom
import pytest

from dicomkit.pacs.index import Index, orthanc_id
from dicomkit.pacs.server import read_record, reconcile
from dicomkit.pacs.storage import Storage
from tests.conftest import testdata


def test_files_are_named_from_their_hash(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    raw = testdata("CT_small.dcm").read_bytes()
    path = storage.write(raw)
    digest = hashlib.sha256(raw).hexdigest()
    assert path == tmp_path / "files" / digest[:2] / f"{digest}.dcm"
    assert path.read_bytes() == raw
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(ValueError):
        storage.absolute("../../etc/passwd")


def test_full_disk_is_out_of_resources_with_no_partial_file(tmp_path: Path) -> None:
    """A real full-disk condition, without root: the file-size limit (RLIMIT_FSIZE) makes
    write() fail with EFBIG, which the storage treats like ENOSPC."""
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from dicomkit.pacs.storage import Storage, StorageFull
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        storage = Storage(Path({str(tmp_path)!r}))
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            storage.write(b"x" * 100_000)
        except StorageFull as exc:
            print("full", exc.errno)
            sys.exit(0)
        sys.exit(1)
        """
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("full")
    leftovers = [f for f in (tmp_path / "files").rglob("*") if f.is_file()]
    assert leftovers == []


def test_index_ids_duplicates_and_counts(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    raw = testdata("CT_small.dcm").read_bytes()
    rec = read_record(raw)
    rec.path, rec.size = "files/aa/a.dcm", len(raw)
    assert index.add(rec, "t0")
    rec2 = read_record(raw)
    rec2.path = "files/bb/b.dcm"
    assert not index.add(rec2, "t1")  # same SOP Instance UID: the first copy stays
    assert index.instance_path(rec.sop_uid) == "files/aa/a.dcm"
    assert index.counts() == {"patients": 1, "studies": 1, "series": 1, "instances": 1}
    ds = pydicom.dcmread(testdata("CT_small.dcm"), stop_before_pixels=True)
    # Orthanc 1.10.1 gave these ids for this file (GET /studies, /patients).
    assert rec.ids[0] == "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718"
    assert rec.ids[1] == "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
    assert rec.ids[1] == orthanc_id(ds.PatientID, ds.StudyInstanceUID)
    (study,) = index.resources("STUDY")
    assert study.extra["ModalitiesInStudy"] == ["CT"]
    assert study.extra["NumberOfStudyRelatedInstances"] == 1
    assert study.parent_tags["PatientID"] == "1CT1"


def test_reconcile_indexes_files_the_index_lost(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    index = Index(tmp_path / "index.sqlite3")
    for name in ("CT_small.dcm", "MR_small.dcm"):
        storage.write(testdata(name).read_bytes())
    # Also a later duplicate of CT_small (different bytes, same SOP Instance UID).
    dup = pydicom.dcmread(testdata("CT_small.dcm"))
    dup.StudyDescription = "changed"
    from io import BytesIO

    buf = BytesIO()
    dup.save_as(buf, enforce_file_format=True)
    assert reconcile(storage, index) == 2
    dup_path = storage.write(buf.getvalue())
    assert reconcile(storage, index) == 0
    assert not dup_path.exists()  # the first copy stays, the duplicate goes
    assert index.counts()["instances"] == 2
