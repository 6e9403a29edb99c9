"""MPPS on the running lab, each engine (embedded: inside the PACS; native: the lab process
beside Orthanc): the real CLI as the modality, the RIS order following, and the PS3.4 F.7
refusals sent by hand with pynetdicom, each leaving the step and the order as they were."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.conftest import Lab

MPPS = "1.2.840.10008.3.1.2.3.3"


def place(lab: Lab, accession: str) -> dict[str, Any]:
    body = {"patient_id": f"P-{accession}", "patient_name": "DOE^JANE", "accession": accession,
            "modality": "CR", "study_desc": "XR CHEST"}  # fmt: skip
    r = lab.cli("order", "create", "--from-json", "-", "--json", input=json.dumps(body))
    assert r.code == 0, r.out + r.err
    return dict(r.json())


def order(lab: Lab, accession: str) -> dict[str, Any]:
    r = httpx.get(f"{lab.endpoints.ris_url}/orders/{accession}", timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def in_worklist(lab: Lab, accession: str) -> bool:
    r = lab.cli("worklist", "find", "--accession", accession, "--json")
    assert r.code == 0, r.out + r.err
    return bool(r.json()["matches"])


class Scu:
    """One MPPS association to the lab's SCP, as a modality would open it."""

    def __init__(self, assoc: Any) -> None:
        self.assoc = assoc

    def create(self, ds: Dataset, uid: str) -> tuple[int, str]:
        status, _ = self.assoc.send_n_create(ds, MPPS, uid)
        return int(status.Status), str(status.get("ErrorComment", ""))

    def set(self, ds: Dataset, uid: str) -> tuple[int, str]:
        status, _ = self.assoc.send_n_set(ds, MPPS, uid)
        return int(status.Status), str(status.get("ErrorComment", ""))


@pytest.fixture
def scu(lab: Lab) -> Iterator[Scu]:
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.net import Peer, association

    ep = lab.endpoints
    peer = Peer(ep.host, ep.mpps_port, ep.mpps_aet)
    with association(peer, "DICOMKIT", [build_context(MPPS)], timeout=10) as assoc:
        yield Scu(assoc)


def attributes(lab: Lab, accession: str) -> Dataset:
    from dicomkit.dicom.mpps import create_attributes

    r = lab.cli("worklist", "find", "--accession", accession, "--json")
    (item,) = r.json()["matches"]
    return create_attributes(item, "DICOMKIT")


def final(state: str, series: bool = True) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = state
    ds.PerformedProcedureStepEndDate = "20260101"
    ds.PerformedProcedureStepEndTime = "120000"
    item = Dataset()
    item.SeriesInstanceUID = generate_uid()
    item.ProtocolName = "CHEST PA"
    item.ReferencedImageSequence = []
    ds.PerformedSeriesSequence = [item] if series else []
    return ds


def test_status_names_the_mpps_scp(lab: Lab) -> None:
    r = lab.cli("status", "--json")
    assert r.code == 0, r.out + r.err
    mpps = r.json()["mpps"]
    if lab.engine == "embedded":  # the PACS itself
        assert mpps == {"aet": "ORTHANC", "dicom": f"127.0.0.1:{lab.cfg.dicom_port}"}
    else:  # a lab process beside Orthanc, on its own port and AE title
        assert mpps == {"aet": "DICOMKIT_MPPS", "dicom": f"127.0.0.1:{lab.cfg.mpps_port}"}
        svc = next(s for s in r.json()["services"] if s["name"] == "mpps")
        assert svc["healthy"] and f"{lab.cfg.mpps_port}/dicom" in svc["ports"]


def test_start_image_complete_and_the_order_follows(lab: Lab, tmp_path: Path) -> None:
    acc = f"MPPS-{lab.engine[:3].upper()}-1"
    place(lab, acc)
    assert order(lab, acc)["status"] == "SCHEDULED"
    r = lab.cli("mpps", "start", "--accession", acc, "--json")
    assert r.code == 0, r.out + r.err
    uid = r.json()["sop_instance_uid"]
    assert r.json()["state"] == "IN PROGRESS"
    o = order(lab, acc)
    assert (o["status"], o["mpps_sop_instance_uid"]) == ("IN PROGRESS", uid)
    assert in_worklist(lab, acc)  # still scheduled work until the step ends
    r = lab.cli("order", "show", acc)
    assert "IN PROGRESS" in r.out and uid[:20] in r.out
    # COMPLETED lists the series the PACS holds: none yet is bad input (exit 2), nothing sent.
    r = lab.cli("mpps", "complete", "--accession", acc, "--json")
    assert r.code == 2 and "holds no image" in r.json()["message"], r.out + r.err
    assert order(lab, acc)["status"] == "IN PROGRESS"
    img = tmp_path / "img.dcm"
    assert lab.cli("make-image", "--accession", acc, "--out", str(img)).code == 0
    assert lab.cli("store", str(img)).code == 0
    r = lab.cli("mpps", "complete", "--accession", acc, "--json")
    assert r.code == 0, r.out + r.err
    assert (r.json()["state"], r.json()["series"]) == ("COMPLETED", 1)
    assert order(lab, acc)["status"] == "COMPLETED"
    assert not in_worklist(lab, acc)  # a completed step leaves the worklist
    # PS3.4 F.7.2.2.2: a COMPLETED step may no longer be updated (0x0110, with a comment).
    r = lab.cli("mpps", "discontinue", "--accession", acc, "--json")
    assert r.code == 1, r.out + r.err
    assert "0x0110" in r.json()["message"] and "may no longer be updated" in r.json()["message"]
    assert order(lab, acc)["status"] == "COMPLETED"


def test_discontinue_without_images(lab: Lab) -> None:
    acc = f"MPPS-{lab.engine[:3].upper()}-2"
    place(lab, acc)
    assert lab.cli("mpps", "start", "--accession", acc).code == 0
    r = lab.cli("mpps", "discontinue", "--accession", acc, "--json")
    assert r.code == 0, r.out + r.err
    assert (r.json()["state"], r.json()["series"]) == ("DISCONTINUED", 0)
    assert order(lab, acc)["status"] == "DISCONTINUED"
    assert not in_worklist(lab, acc)
    # Its worklist item is gone: there is nothing to start again.
    r = lab.cli("mpps", "start", "--accession", acc, "--json")
    assert r.code == 2 and "no worklist item" in r.json()["message"], r.out + r.err


def test_n_set_on_an_unknown_instance_is_0x0112(lab: Lab, scu: Scu) -> None:
    assert scu.set(final("COMPLETED"), generate_uid())[0] == 0x0112


def test_missing_type1_attributes_are_refused_and_nothing_is_kept(lab: Lab, scu: Scu) -> None:
    acc = f"MPPS-{lab.engine[:3].upper()}-3"
    place(lab, acc)
    for keyword, code in (("PerformedProcedureStepID", 0x0120), ("Modality", 0x0120)):
        ds = attributes(lab, acc)
        delattr(ds, keyword)
        uid = generate_uid()
        status, comment = scu.create(ds, uid)
        assert (status, keyword in comment) == (code, True), comment
        assert scu.set(final("DISCONTINUED"), uid)[0] == 0x0112  # not kept
    ds = attributes(lab, acc)
    ds.ScheduledStepAttributesSequence[0].StudyInstanceUID = ""
    status, comment = scu.create(ds, generate_uid())
    assert status == 0x0121 and "StudyInstanceUID" in comment, comment
    # F.7.2.1: a step is created IN PROGRESS only.
    ds = attributes(lab, acc)
    ds.PerformedProcedureStepStatus = "COMPLETED"
    assert scu.create(ds, generate_uid())[0] == 0x0106
    assert order(lab, acc)["status"] == "SCHEDULED"
    assert in_worklist(lab, acc)


def test_state_rules_by_hand(lab: Lab, scu: Scu) -> None:
    acc = f"MPPS-{lab.engine[:3].upper()}-4"
    place(lab, acc)
    uid = generate_uid()
    assert scu.create(attributes(lab, acc), uid) == (0, "")
    assert scu.create(attributes(lab, acc), uid)[0] == 0x0111  # duplicate SOP instance
    # The final N-SET must carry the Final State attributes; refused, it changes nothing.
    # (N-CREATE sent End Time empty, as Type 2 there: still empty, so "missing value".)
    no_end = final("COMPLETED")
    del no_end.PerformedProcedureStepEndTime
    status, comment = scu.set(no_end, uid)
    assert status == 0x0121 and "PerformedProcedureStepEndTime" in comment, comment
    status, comment = scu.set(final("COMPLETED", series=False), uid)
    assert status == 0x0121 and "PerformedSeriesSequence" in comment, comment
    bad = Dataset()
    bad.PerformedProcedureStepStatus = "PAUSED"
    assert scu.set(bad, uid)[0] == 0x0106
    assert order(lab, acc)["status"] == "IN PROGRESS" and in_worklist(lab, acc)
    # An intermediate N-SET (still IN PROGRESS) is fine; then the final one.
    progress = Dataset()
    progress.PerformedProcedureStepDescription = "CHEST PA AND LAT"
    assert scu.set(progress, uid) == (0, "")
    assert scu.set(final("COMPLETED"), uid) == (0, "")
    assert order(lab, acc)["status"] == "COMPLETED" and not in_worklist(lab, acc)
    status, comment = scu.set(final("DISCONTINUED"), uid)
    assert status == 0x0110 and "may no longer be updated" in comment
    assert scu.set(progress, uid)[0] == 0x0110
    assert order(lab, acc)["status"] == "COMPLETED"
