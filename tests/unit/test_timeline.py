"""Timeline assembly (dicomkit/timeline/rows.py) from records shaped as the lab's services
write them: which rows, from whom, and in which order."""

from __future__ import annotations

from dicomkit.timeline.rows import (
    Timeline,
    from_commitments,
    from_hl7_refusals,
    from_instances,
    from_lab_events,
    from_order_events,
    iso,
    ordered,
    table_rows,
)
from dicomkit.tutor.steps.lesson14_the_scheduled_workflow import missing

EVENTS = [
    {"at": "2026-12-01T10:00:00.100+00:00", "event": "created", "via": "hl7",
     "detail": {"message_type": "ORM^O01", "control_id": "MSG-1", "worklist_item_id": "w1"}},
    # The RIS was told later than the SCP heard it (a retry): the row has the SCP's time.
    {"at": "2026-12-01T10:00:09.000+00:00", "event": "IN PROGRESS", "via": "mpps",
     "detail": {"received": "2026-12-01T10:00:05.250+00:00", "calling_aet": "MOD1",
                "mpps_sop_instance_uid": "1.2.9"}},
    {"at": "2026-12-01T10:00:12.600+00:00", "event": "COMPLETED", "via": "mpps",
     "detail": {"received": "2026-12-01T10:00:12.500+00:00", "calling_aet": "MOD1",
                "mpps_sop_instance_uid": "1.2.9"}},
]  # fmt: skip
# Orthanc's ReceptionDate: seconds only, in the same second as the N-SET.
INSTANCES = [{"sop_instance_uid": "1.2.5", "received": "20261201T100012", "remote_aet": "MOD1"}]
COMMITS = [
    {"transaction_uid": "1.2.7", "requested": "2026-12-01T10:00:20.000+00:00",
     "reported": "2026-12-01T10:00:20.040+00:00", "association": "new", "report_from": "ORTHANC",
     "committed": 1, "failed": 0, "instances": [{"sop_instance_uid": "1.2.5"}]},
    {"transaction_uid": "1.2.8", "requested": "2026-12-01T10:00:30.000+00:00",
     "reported": "2026-12-01T10:00:30.040+00:00", "association": "same", "report_from": "ORTHANC",
     "committed": 1, "failed": 0, "instances": [{"sop_instance_uid": "9.9.9"}]},  # another study
]  # fmt: skip


def _rows() -> list:
    rows = from_order_events(EVENTS, "RIS", "MPPS")
    rows += from_instances(INSTANCES, "ORTHANC")
    rows += from_commitments(COMMITS, {"1.2.5"}, "DICOMKIT")
    return ordered(rows)


def test_a_whole_run_in_the_order_the_lab_saw_it() -> None:
    rows = _rows()
    assert [r.transaction.split()[0] for r in rows] == ["RAD-2", "RAD-6", "RAD-8", "RAD-7",
                                                        "RAD-10", "RAD-10"]  # fmt: skip
    order, start, store, end, action, report = rows
    assert (order.sender, order.receiver) == ("HIS", "RIS") and "ORC-1 NW" in order.message
    assert order.result.startswith("ACK AA")
    assert (start.at, start.sender, start.receiver) == ("2026-12-01T10:00:05.250Z", "MOD1", "MPPS")
    assert "N-CREATE" in start.message and "10:00:09.000Z" in start.result  # when the RIS followed
    assert (store.at, store.sender) == ("2026-12-01T10:00:12Z", "MOD1")
    assert "N-SET COMPLETED" in end.message
    assert (action.sender, action.receiver, report.sender) == ("DICOMKIT", "ORTHANC", "ORTHANC")
    assert "new association" in report.message and report.result == "1 committed, 0 failed"
    assert missing(Timeline("A1", "native", rows)) == []


def test_across_seconds_time_wins_over_the_workflow_order() -> None:
    late_store = [{"sop_instance_uid": "1.2.5", "received": "20261201T100013", "remote_aet": ""}]
    rows = ordered(from_order_events(EVENTS, "RIS", "MPPS") + from_instances(late_store, "PACS"))
    assert [r.transaction.split()[0] for r in rows] == ["RAD-2", "RAD-6", "RAD-7", "RAD-8"]
    assert rows[-1].sender == "(sender not recorded)"
    assert missing(Timeline("A1", "embedded", rows)) == ["RAD-10"]
    assert missing(Timeline("A1", "embedded", rows + from_commitments(COMMITS, {"1.2.5"}, "ME"))) \
        == ["order RAD-2 RAD-6 RAD-7 RAD-8 RAD-10"]  # fmt: skip


def test_http_orders_cancels_and_refused_hl7() -> None:
    events = [{"at": "2026-12-01T10:00:00+00:00", "event": "created", "via": "http", "detail": {}},
              {"at": "2026-12-01T10:01:00+00:00", "event": "cancelled", "via": "hl7",
               "detail": {"message_type": "ORM^O01", "control_id": "C1"}}]  # fmt: skip
    created, cancelled = from_order_events(events, "RIS", "MPPS")
    assert (created.sender, created.message) == ("HTTP client", "POST /orders")
    assert "ORC-1 CA" in cancelled.message and "removed" in cancelled.result
    journal = [{"received": "2026-12-01T09:59:00.000+00:00", "message_type": "ORM^O01",
                "control_id": "BAD", "ack": "AE", "text": "OBR-18 missing", "accession": "A1"},
               {"received": "x", "message_type": "ORM^O01", "control_id": "OK", "ack": "AA",
                "accession": "A1"},
               {"received": "x", "ack": "AE", "accession": "A2"}]  # fmt: skip
    [refused] = from_hl7_refusals(journal, "A1", "RIS")
    assert refused.result == "ACK AE: OBR-18 missing" and refused.at == "2026-12-01T09:59:00.000Z"


def test_times_from_either_recorder_read_as_utc() -> None:
    assert iso("20261201T100012") == "2026-12-01T10:00:12Z"
    assert iso("2026-12-01T11:00:12.345+01:00") == "2026-12-01T10:00:12.345Z"
    assert iso("not a time") == "not a time"
    assert table_rows(Timeline("A1", "native", _rows()))[0][:3] == ["10:00:00.100Z", "HIS → RIS",
                                                                    "RAD-2"]  # fmt: skip


def test_feed_rows_queries_stores_and_refused_associations() -> None:
    feed = [
        {"t": "2026-12-01T10:00:01.000+00:00", "service": "mwl-find", "calling": "MOD1",
         "called": "PACS", "keys": {"AccessionNumber": "A1"}, "matches": 1, "status": 0},
        # A station's list within the order's lifetime, and one naming another order.
        {"t": "2026-12-01T10:00:02+00:00", "service": "mwl-find", "calling": "MOD1",
         "called": "PACS", "keys": {"ScheduledStationAETitle": "MOD1"}, "matches": 3,
         "matches_from": "worklist folder"},
        {"t": "2026-12-01T10:00:02.500+00:00", "service": "mwl-find", "calling": "MOD1",
         "called": "PACS", "keys": {"AccessionNumber": "A2"}, "matches": 1},
        {"t": "2026-12-01T10:00:12.100+00:00", "service": "store", "calling": "MOD1",
         "called": "PACS", "sop_instance_uid": "1.2.5", "status": 0},
        {"t": "2026-12-01T10:00:13.000+00:00", "service": "store", "calling": "MOD1",
         "called": "PACS", "sop_instance_uid": "7.7", "status": 0},
        {"t": "2026-12-01T10:00:14.000+00:00", "service": "association", "calling": "MOD1",
         "called": "WRONG", "accepted": False, "reason": "called AE title not recognised"},
        {"t": "2026-12-01T11:00:00.000+00:00", "service": "association", "calling": "MOD1",
         "called": "WRONG", "accepted": False, "reason": "later, another order's"},
    ]  # fmt: skip
    rows, stored = from_lab_events(feed, "A1", {"1.2.5"}, ("2026-12-01T10:00:00.100+00:00",
                                                         "2026-12-01T10:00:20.040+00:00"))  # fmt: skip
    assert stored == {"1.2.5"}
    assert [r.transaction.split()[0] for r in rows] == ["RAD-5", "RAD-5", "RAD-8", "association"]
    assert rows[0].result == "1 match(es)" and rows[0].at == "2026-12-01T10:00:01.000Z"
    assert (
        "names no accession" in rows[1].message
        and "Orthanc records no match count" in rows[1].result
    )
    assert rows[2].sender == "MOD1" and rows[3].result.startswith("rejected")
    # Seconds-only rows go among their second's rows by the workflow's order, the rest by time.
    late = from_order_events(EVENTS, "RIS", "MPPS") + rows
    assert [r.transaction.split()[0] for r in ordered(late)] == [
        "RAD-2", "RAD-5", "RAD-5", "RAD-6", "RAD-8", "RAD-7", "association"]  # fmt: skip
