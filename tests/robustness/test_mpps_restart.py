"""The MPPS SCP keeps its steps across a restart, and tells the RIS what it missed while the
RIS could not be reached: the embedded PACS in this process, a real RIS process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.conftest import free_port, start_pacs
from tests.robustness.conftest import ORDER, Ris, start_ris, stop

MPPS = "1.2.840.10008.3.1.2.3.3"


@pytest.fixture
def ris(tmp_path: Path) -> Iterator[Ris]:
    server = start_ris(tmp_path / "ris")
    try:
        yield server
    finally:
        stop(server.proc)


def _send(srv: Any, op: str, ds: Dataset, uid: str) -> int:
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.net import Peer, association

    peer = Peer("127.0.0.1", srv.cfg.dicom_port, srv.cfg.aet)
    with association(peer, "DICOMKIT", [build_context(MPPS)], timeout=10) as assoc:
        if op == "create":
            status, _ = assoc.send_n_create(ds, MPPS, uid)
        else:
            status, _ = assoc.send_n_set(ds, MPPS, uid)
    return int(status.Status)


def _wait_status(ris: Ris, accession: str, want: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = httpx.get(f"{ris.url}/orders/{accession}", timeout=5).json()["status"]
        if seen == want:
            return
        time.sleep(0.05)
    raise AssertionError(f"order {accession} is {seen!r}, not {want!r}, after {timeout} s")


def test_steps_survive_a_restart_and_the_ris_catches_up(tmp_path: Path, ris: Ris) -> None:
    from dicomkit.dicom.mpps import create_attributes

    placed = ris.post({**ORDER, "accession": "MPPS-R1"}).json()
    item = {"accession": "MPPS-R1", "patient_id": ORDER["patient_id"],
            "patient_name": ORDER["patient_name"], "birth_date": "", "sex": "",
            "study_instance_uid": placed["study_instance_uid"],
            "requested_procedure_id": placed["requested_procedure_id"],
            "requested_procedure_description": "XR CHEST", "modality": "CR",
            "sps_id": placed["scheduled_procedure_step_id"],
            "sps_description": "XR CHEST"}  # fmt: skip
    uid = generate_uid()
    # First life: the RIS URL leads nowhere, so the RIS cannot be told.
    home = tmp_path / "pacs"
    srv = start_pacs(home, "ORTHANC", ris_url=f"http://127.0.0.1:{free_port()}")
    try:
        assert _send(srv, "create", create_attributes(item, "DICOMKIT"), uid) == 0
    finally:
        srv.stop()
    assert httpx.get(f"{ris.url}/orders/MPPS-R1", timeout=5).json()["status"] == "SCHEDULED"
    # Second life, same storage, the real RIS: it is told at start, and the step is still there.
    srv = start_pacs(home, "ORTHANC", ris_url=ris.url)
    try:
        _wait_status(ris, "MPPS-R1", "IN PROGRESS")
        assert _send(srv, "create", create_attributes(item, "DICOMKIT"), uid) == 0x0111
        end = Dataset()
        end.PerformedProcedureStepStatus = "DISCONTINUED"
        end.PerformedProcedureStepEndDate = "20260101"
        end.PerformedProcedureStepEndTime = "120000"
        assert _send(srv, "set", end, uid) == 0
        _wait_status(ris, "MPPS-R1", "DISCONTINUED")
        assert ris.wl_files() == set()  # the only item left with its step
    finally:
        srv.stop()


def test_an_unscheduled_step_is_kept_and_the_ris_left_alone(tmp_path: Path, ris: Ris) -> None:
    """PS3.4 F.7.2.1: a step need not match an order (an unscheduled exam): Success, and the
    RIS, which has no such order (404), is not asked again."""
    from dicomkit.dicom.mpps import create_attributes

    item = {"accession": "NO-ORDER", "patient_id": "P", "patient_name": "X^Y", "birth_date": "",
            "sex": "", "study_instance_uid": "1.2.3", "requested_procedure_id": "",
            "requested_procedure_description": "", "modality": "CR", "sps_id": "",
            "sps_description": ""}  # fmt: skip
    srv = start_pacs(tmp_path / "pacs", "ORTHANC", ris_url=ris.url)
    try:
        assert _send(srv, "create", create_attributes(item, "DICOMKIT"), generate_uid()) == 0
        assert srv.mpps.store.pending() == []
    finally:
        srv.stop()
