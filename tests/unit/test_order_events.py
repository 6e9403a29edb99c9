"""The RIS's order events: how each order arrived (HTTP or HL7), each status the MPPS SCP
reported with when it received the message, a cancel; an older order book gains the table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dicomkit.dicom.mpps import create_attributes
from dicomkit.pacs import mpps
from dicomkit.ris.hl7in import Journal, handle
from dicomkit.ris.models import OrderIn
from dicomkit.ris.store import OrderStore
from dicomkit.tutor.steps.lesson09_orders_arrive_as_hl7 import orm


def _store(tmp_path: Path) -> OrderStore:
    return OrderStore(tmp_path / "orders.sqlite3", tmp_path / "worklists")


def _order(accession: str) -> OrderIn:
    return OrderIn(patient_id="P1", patient_name="DOE^JANE", accession=accession, modality="CR")


def test_an_http_order_its_status_and_cancel_are_events(tmp_path: Path) -> None:
    store = _store(tmp_path)
    out = store.create(_order("A1"))
    store.set_status("A1", "IN PROGRESS", "1.2.3", "", {"received": "2026-01-01T10:00:00.000+00:00",
                                                       "calling_aet": "MOD1"})  # fmt: skip
    store.set_status("A1", "IN PROGRESS", "1.2.3")  # the same report again: no new event
    store.set_status("A1", "COMPLETED", "1.2.3")
    store.delete("A1")
    events = store.events("A1")
    assert [(e["event"], e["via"]) for e in events] == [
        ("created", "http"), ("IN PROGRESS", "mpps"), ("COMPLETED", "mpps"), ("cancelled", "http")]  # fmt: skip
    assert events[0]["detail"] == {"worklist_item_id": out.worklist_item_id}
    assert events[1]["detail"] == {"received": "2026-01-01T10:00:00.000+00:00",
                                   "calling_aet": "MOD1", "mpps_sop_instance_uid": "1.2.3"}  # fmt: skip
    assert events[0]["at"] <= events[1]["at"] <= events[3]["at"]
    assert store.events("A2") == []


def test_an_hl7_order_says_which_message_made_it(tmp_path: Path) -> None:
    store = _store(tmp_path)
    journal = Journal()
    ack = handle(orm("A7", "MSG-7").replace("\n", "\r").encode(), store, journal)
    assert b"MSA|AA|MSG-7" in ack
    [event] = store.events("A7")
    assert (event["event"], event["via"]) == ("created", "hl7")
    assert event["detail"]["message_type"] == "ORM^O01"
    assert event["detail"]["control_id"] == "MSG-7"
    refused = handle(orm("A8", "MSG-8", obr18="").replace("\n", "\r").encode(), store, journal)
    assert b"MSA|AE" in refused and store.events("A8") == []  # nothing created, nothing told


def test_an_older_order_book_gains_the_events_table(tmp_path: Path) -> None:
    db = tmp_path / "orders.sqlite3"
    old = _store(tmp_path)
    old.create(_order("A1"))
    with sqlite3.connect(db) as c:  # the order book as it was before order events existed
        c.execute("DROP TABLE order_events")
    store = _store(tmp_path)
    assert store.get("A1").order.accession == "A1" and store.events("A1") == []
    store.set_status("A1", "IN PROGRESS", "1.2.3")
    assert [e["event"] for e in store.events("A1")] == ["IN PROGRESS"]


def test_the_mpps_scp_says_when_it_heard_the_step(tmp_path: Path) -> None:
    steps = mpps.StepStore(tmp_path / "mpps.sqlite3")
    item = {"accession": "A1", "patient_id": "P1", "patient_name": "DOE^JANE", "birth_date": "",
            "sex": "", "study_instance_uid": "1.2.3.4", "requested_procedure_id": "RP1",
            "requested_procedure_description": "XR", "modality": "CR", "sps_id": "SPS1",
            "sps_description": "XR"}  # fmt: skip
    assert mpps.create_step(steps, "1.9", create_attributes(item, "MOD1")).ok
    received, station = steps.heard("1.9")
    assert station == "MOD1" and received == steps.list()[0]["updated"]
    assert steps.heard("1.10") == ("", "")
