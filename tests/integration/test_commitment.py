"""Storage commitment, Push Model (PS3.4 Annex J), on every engine: the embedded PACS's SCP
(pacs/commitment.py) and Orthanc's own, driven by `dicomkit commit` and by a bare pynetdicom
requestor that releases at once (the report must then come on a new association)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dicomkit.dicom.receiver import STORAGE_COMMITMENT_PUSH, listening
from tests.conftest import Lab, testdata
from tests.integration.test_retrieve import acquire_study

pytestmark = pytest.mark.orthanc  # the native lab runs Orthanc


def test_commit_files(lab: Lab, tmp_path: Path) -> None:
    acc = f"SC-{lab.engine[:3].upper()}-1"
    files = acquire_study(lab, acc, tmp_path)
    r = lab.cli("commit", *map(str, files), "--json")
    assert r.code == 0, r.out + r.err
    d = r.json()
    assert d["ok"] is True and d["committed"] == 2 and d["failed"] == 0
    # Orthanc reports on a new association; the embedded PACS on ours while it is open.
    assert d["association"] == ("new" if lab.engine == "native" else "same")
    assert d["report_from"] == "ORTHANC"
    uids = {str(pydicom.dcmread(f).SOPInstanceUID) for f in files}
    assert {i["sop_instance_uid"] for i in d["instances"]} == uids
    assert {i["file"] for i in d["instances"]} == {str(f) for f in files}


def test_commit_unknown_instance_fails_with_0x0112(lab: Lab, tmp_path: Path) -> None:
    acc = f"SC-{lab.engine[:3].upper()}-2"
    [stored] = acquire_study(lab, acc, tmp_path, n=1)
    never = testdata("MR_small.dcm")  # never sent to this PACS
    r = lab.cli("commit", str(stored), str(never), "--json")
    assert r.code == 1, r.out + r.err
    d = r.json()
    assert d["committed"] == 1 and d["failed"] == 1
    [failed] = [i for i in d["instances"] if not i["committed"]]
    assert failed["sop_instance_uid"] == str(pydicom.dcmread(never).SOPInstanceUID)
    assert failed["failure_reason"] == 0x0112  # PS3.3 C.14.1.1 No such object instance
    r = lab.cli("commit", str(never))
    assert r.code == 1 and "FAILED" in r.out and "no such object instance" in r.out


def test_commit_by_accession(lab: Lab, tmp_path: Path) -> None:
    acc = f"SC-{lab.engine[:3].upper()}-3"
    files = acquire_study(lab, acc, tmp_path)
    r = lab.cli("commit", "--accession", acc, "--json")
    assert r.code == 0, r.out + r.err
    d = r.json()
    assert d["committed"] == 2
    assert {i["sop_instance_uid"] for i in d["instances"]} == {
        str(pydicom.dcmread(f).SOPInstanceUID) for f in files
    }


# The bare requestor may get the report on its association just as it aborts; pynetdicom then
# raises in its own reactor thread (answering after A-ABORT): that is the client leaving, not us.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_report_on_a_new_association_when_the_requestor_left(lab: Lab, tmp_path: Path) -> None:
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid
    from pynetdicom import AE

    acc = f"SC-{lab.engine[:3].upper()}-4"
    [f] = acquire_study(lab, acc, tmp_path, n=1)
    sent = pydicom.dcmread(f)
    got: dict[str, Any] = {}
    done = threading.Event()

    def on_report(event: Any) -> tuple[int, None]:
        got["info"] = event.event_information
        got["calling"] = str(event.assoc.requestor.ae_title).strip()
        got["type"] = event.event_type
        done.set()
        return 0x0000, None

    ds = Dataset()
    ds.TransactionUID = generate_uid()
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sent.SOPClassUID, sent.SOPInstanceUID
    ds.ReferencedSOPSequence = [ref]
    port = lab.cfg.retrieve_port  # where the lab's PACS knows AE DICOMKIT
    with listening("DICOMKIT", "127.0.0.1", port, on_event_report=on_report):
        ae = AE(ae_title="DICOMKIT")
        ae.add_requested_context(STORAGE_COMMITMENT_PUSH)
        assoc = ae.associate("127.0.0.1", lab.cfg.dicom_port, ae_title="ORTHANC")
        assert assoc.is_established
        status, _ = assoc.send_n_action(ds, 1, STORAGE_COMMITMENT_PUSH, "1.2.840.10008.1.20.1.1")
        assoc.abort()  # gone before any report: it must come on a new association
        ae.shutdown()
        assert status.Status == 0x0000
        assert done.wait(30), "no N-EVENT-REPORT on a new association"
    assert got["calling"] == "ORTHANC" and got["type"] == 1  # PS3.4 J.3.3: all committed
    assert got["info"].TransactionUID == ds.TransactionUID
    assert got["info"].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == sent.SOPInstanceUID


def test_commit_logs_what_happened(lab: Lab, tmp_path: Path) -> None:
    if lab.engine != "embedded":
        pytest.skip("the embedded PACS's log lines (Orthanc logs its job in its own words)")
    [f] = acquire_study(lab, "SC-EMB-LOG", tmp_path, n=1)
    assert lab.cli("commit", str(f)).code == 0
    text = (lab.cfg.log_dir / "pacs.log").read_text()
    assert "storage commitment" in text and "1 committed, 0 failed" in text
    assert "reported to DICOMKIT on the same association" in text


def _n_action(lab: Lab, ds: Any, action_type: int = 1) -> int:
    from pynetdicom import AE

    ae = AE(ae_title="DICOMKIT")
    ae.add_requested_context(STORAGE_COMMITMENT_PUSH)
    assoc = ae.associate("127.0.0.1", lab.cfg.dicom_port, ae_title="ORTHANC")
    assert assoc.is_established
    try:
        status, _ = assoc.send_n_action(ds, action_type, STORAGE_COMMITMENT_PUSH,
                                        "1.2.840.10008.1.20.1.1")  # fmt: skip
        return int(status.Status)
    finally:
        assoc.release()
        ae.shutdown()


def test_bad_requests_are_refused(lab: Lab) -> None:
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    if lab.engine != "embedded":
        pytest.skip("the embedded SCP's answers (Orthanc's are its own)")
    no_refs = Dataset()
    no_refs.TransactionUID = generate_uid()
    assert _n_action(lab, no_refs) == 0x0120  # PS3.7 Missing attribute (Table J.3-1: Type 1)
    no_uid = Dataset()
    no_uid.ReferencedSOPSequence = []
    assert _n_action(lab, no_uid) == 0x0120
    assert _n_action(lab, no_refs, action_type=7) == 0x0123  # No such action type
    # The PACS still answers afterwards.
    assert lab.cli("echo").code == 0


def test_orthanc_lists_its_commitment_job(lab: Lab, tmp_path: Path) -> None:
    import httpx

    if lab.engine != "native":
        pytest.skip("Orthanc's REST API (the embedded PACS logs instead)")
    [f] = acquire_study(lab, "SC-NAT-JOB", tmp_path, n=1)
    r = lab.cli("commit", str(f), "--json")
    assert r.code == 0, r.out + r.err
    jobs = httpx.get(f"http://127.0.0.1:{lab.cfg.http_port}/jobs?expand", timeout=10).json()
    assert any(j.get("Type") == "StorageCommitmentScp" for j in jobs), jobs
