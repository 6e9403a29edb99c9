"""The RIS order follows its procedure step (what the MPPS SCP reports): the transitions,
the worklist item leaving with a closed step, and recovery that never brings it back."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomkit.dicom import worklist
from dicomkit.ris.models import OrderIn
from dicomkit.ris.store import OrderNotFound, OrderStore, StatusConflict


def _store(tmp_path: Path) -> OrderStore:
    return OrderStore(tmp_path / "orders.sqlite3", tmp_path / "worklists")


def _place(store: OrderStore, accession: str) -> tuple[str, Path]:
    out = store.create(OrderIn(patient_id="P1", patient_name="DOE^JANE", accession=accession,
                               modality="CR"))  # fmt: skip
    return out.study_instance_uid, worklist.item_path(store.worklist_dir, out.worklist_item_id)


def test_scheduled_in_progress_completed_and_the_item_leaves(tmp_path: Path) -> None:
    store = _store(tmp_path)
    study, item = _place(store, "A1")
    assert store.get("A1").status == "SCHEDULED"
    out = store.set_status("A1", "IN PROGRESS", "1.2.3", study)
    assert (out.status, out.mpps_sop_instance_uid) == ("IN PROGRESS", "1.2.3")
    assert item.exists()
    assert store.set_status("A1", "IN PROGRESS", "1.2.3").status == "IN PROGRESS"  # a retry
    assert store.set_status("A1", "COMPLETED", "1.2.3").status == "COMPLETED"
    assert not item.exists()
    assert store.get("A1").status == "COMPLETED"


@pytest.mark.parametrize(
    ("before", "status", "mpps", "study", "why"),
    [
        ("COMPLETED", "DISCONTINUED", "1.2.3", "", "cannot become"),
        ("COMPLETED", "IN PROGRESS", "1.2.3", "", "cannot become"),
        ("IN PROGRESS", "COMPLETED", "9.9.9", "", "another MPPS"),
        ("IN PROGRESS", "COMPLETED", "1.2.3", "1.2.999", "names study"),
    ],
)
def test_refused_transitions_change_nothing(
    tmp_path: Path, before: str, status: str, mpps: str, study: str, why: str
) -> None:
    store = _store(tmp_path)
    _place(store, "A1")
    store.set_status("A1", "IN PROGRESS", "1.2.3")
    if before == "COMPLETED":
        store.set_status("A1", "COMPLETED", "1.2.3")
    was = store.get("A1")
    with pytest.raises(StatusConflict, match=why):
        store.set_status("A1", status, mpps, study)
    assert store.get("A1") == was


def test_unknown_order(tmp_path: Path) -> None:
    with pytest.raises(OrderNotFound):
        _store(tmp_path).set_status("NOPE", "IN PROGRESS")


def test_recovery_and_patient_updates_never_bring_a_closed_item_back(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _, done = _place(store, "A1")
    _, open_item = _place(store, "A2")
    store.set_status("A1", "DISCONTINUED", "1.2.3")
    open_item.unlink()  # as after a crash between the row and the file
    assert store.recover()["rewritten"] == 1
    assert open_item.exists() and not done.exists()
    changed = store.update_patient("P1", {"patient_name": "DOE^JANET"})
    assert {o.order.patient_name for o in changed} == {"DOE^JANET"}
    assert not done.exists()
    assert store.get("A1").status == "DISCONTINUED"
