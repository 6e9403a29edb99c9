"""The MPPS service functions (pacs/mpps.py) without a network: PS3.4 F.7 state rules, and
nothing half-changed when a request is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomkit.dicom.mpps import create_attributes
from dicomkit.pacs import mpps

ITEM = {"accession": "A1", "patient_id": "P1", "patient_name": "DOE^JANE", "birth_date": "",
        "sex": "", "study_instance_uid": "1.2.3.4", "requested_procedure_id": "RP1",
        "requested_procedure_description": "XR CHEST", "modality": "CR", "sps_id": "SPS1",
        "sps_description": "XR CHEST"}  # fmt: skip


def _final(state: str, series: int = 1) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = state
    ds.PerformedProcedureStepEndDate = "20260101"
    ds.PerformedProcedureStepEndTime = "120000"
    items = []
    for i in range(series):
        item = Dataset()
        item.SeriesInstanceUID = f"1.2.3.4.{i}"
        items.append(item)
    ds.PerformedSeriesSequence = items
    return ds


@pytest.fixture
def store(tmp_path: Path) -> mpps.StepStore:
    return mpps.StepStore(tmp_path / "mpps.sqlite3")


def test_create_then_complete(store: mpps.StepStore, tmp_path: Path) -> None:
    out = mpps.create_step(store, "1.9", create_attributes(ITEM, "MOD1"))
    assert (out.status, out.state, out.accession, out.study_uid) == (0, "IN PROGRESS", "A1",
                                                                     "1.2.3.4")  # fmt: skip
    assert mpps.set_step(store, "1.9", _final("COMPLETED")).state == "COMPLETED"
    # Another process (a restart) sees the same step, finished.
    state, ds = mpps.StepStore(tmp_path / "mpps.sqlite3").get("1.9") or ("", Dataset())
    assert state == "COMPLETED" and ds.PerformedSeriesSequence[0].SeriesInstanceUID == "1.2.3.4.0"


def test_the_scp_assigns_a_uid_when_none_is_sent(store: mpps.StepStore) -> None:
    out = mpps.create_step(store, "", create_attributes(ITEM, "MOD1"))
    assert out.ok and out.sop_instance and store.get(out.sop_instance) is not None


@pytest.mark.parametrize(
    ("change", "status", "named"),
    [
        (lambda ds: delattr(ds, "PerformedStationAETitle"), 0x0120, "PerformedStationAETitle"),
        (lambda ds: setattr(ds, "PerformedProcedureStepStartDate", ""), 0x0121,
         "PerformedProcedureStepStartDate"),
        (lambda ds: setattr(ds, "ScheduledStepAttributesSequence", []), 0x0121,
         "ScheduledStepAttributesSequence"),
        (lambda ds: delattr(ds.ScheduledStepAttributesSequence[0], "StudyInstanceUID"), 0x0120,
         "StudyInstanceUID (0020,000D) in (0040,0270) item 0"),
        (lambda ds: setattr(ds, "PerformedProcedureStepStatus", "COMPLETED"), 0x0106,
         "IN PROGRESS"),
    ],
)  # fmt: skip
def test_create_refusals_keep_nothing(
    store: mpps.StepStore, change: object, status: int, named: str
) -> None:
    ds = create_attributes(ITEM, "MOD1")
    change(ds)  # type: ignore[operator]
    out = mpps.create_step(store, "1.9", ds)
    assert out.status == status and named in out.comment and len(out.comment) <= 64
    assert store.get("1.9") is None and store.list() == []


def test_set_refusals_change_nothing(store: mpps.StepStore) -> None:
    assert mpps.create_step(store, "1.9", create_attributes(ITEM, "MOD1")).ok
    assert mpps.create_step(store, "1.9", create_attributes(ITEM, "MOD1")).status == 0x0111
    before = store.get("1.9")
    assert mpps.set_step(store, "7.7", _final("COMPLETED")).status == 0x0112
    assert mpps.set_step(store, "1.9", _final("COMPLETED", series=0)).status == 0x0121
    no_uid = _final("COMPLETED")
    no_uid.PerformedSeriesSequence[0].SeriesInstanceUID = ""
    assert mpps.set_step(store, "1.9", no_uid).status == 0x0121
    assert store.get("1.9") == before
    assert mpps.set_step(store, "1.9", _final("DISCONTINUED", series=0)).ok  # allowed empty
    after = store.get("1.9")
    out = mpps.set_step(store, "1.9", _final("COMPLETED"))
    assert out.status == 0x0110 and "no longer be updated" in out.comment
    assert store.get("1.9") == after


def test_the_ris_is_owed_each_change_until_told(store: mpps.StepStore) -> None:
    assert mpps.create_step(store, "1.9", create_attributes(ITEM, "MOD1")).ok
    assert store.pending() == [("1.9", "IN PROGRESS", "A1", "1.2.3.4")]
    store.mark_told("1.9", "IN PROGRESS")
    assert store.pending() == []
    assert mpps.set_step(store, "1.9", _final("COMPLETED")).ok
    store.mark_told("1.9", "IN PROGRESS")  # an older state's acknowledgement: still owed
    assert store.pending() == [("1.9", "COMPLETED", "A1", "1.2.3.4")]


def test_set_may_not_change_what_identifies_the_step(store: mpps.StepStore) -> None:
    attrs = create_attributes(ITEM, "MOD1")
    assert mpps.create_step(store, "1.9", attrs).ok
    before = store.get("1.9")
    again = _final("COMPLETED")
    again.Modality = "CR"  # repeated unchanged: fine
    moved = Dataset()
    moved.Modality = "MR"
    out = mpps.set_step(store, "1.9", moved)
    assert out.status == 0x0106 and "Modality (0008,0060)" in out.comment
    other = Dataset()
    other.ScheduledStepAttributesSequence = [Dataset()]
    assert mpps.set_step(store, "1.9", other).status == 0x0106
    assert store.get("1.9") == before
    assert mpps.set_step(store, "1.9", again).ok
