"""The lab's event feed (dicomkit/labevents.py): lines written whole, read after a mark, an
unfinished last line skipped, Orthanc's dicom log category read as events, no patient data."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from pydicom.dataset import Dataset

from dicomkit.labevents import (
    ORTHANC_LOG,
    EventWriter,
    Mark,
    events_path,
    mark,
    query_keys,
    read_feed,
)


def test_events_after_a_mark_only(tmp_path: Path) -> None:
    writer = EventWriter(events_path(tmp_path))
    writer.emit("echo", "FINDSCU ", "ORTHANC", status=0)
    start = mark(tmp_path)
    writer.emit("store", "STORESCU", "ORTHANC", sop_instance_uid="1.2.3", status=0)
    seen = read_feed(tmp_path, start)
    assert [(e.service, e.calling, e.get("sop_instance_uid")) for e in seen] == [
        ("store", "STORESCU", "1.2.3")
    ]
    assert [e.service for e in read_feed(tmp_path)] == ["echo", "store"]
    assert Mark.parse(str(start)) == start


def test_an_unfinished_line_waits_and_garbage_is_skipped(tmp_path: Path) -> None:
    path = events_path(tmp_path)
    path.write_text('not json\n{"service": "echo", "calling": "A"}\n{"service": "st')
    assert [e.calling for e in read_feed(tmp_path)] == ["A"]


def test_concurrent_writers_never_mix_lines(tmp_path: Path) -> None:
    writer = EventWriter(events_path(tmp_path))

    def burst(n: int) -> None:
        for i in range(200):
            writer.emit("store", f"AE{n}", "ORTHANC", sop_instance_uid=f"1.2.{n}.{i}" * 8)

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = events_path(tmp_path).read_text().splitlines()
    assert len(lines) == 800
    assert all(json.loads(line)["service"] == "store" for line in lines)


def test_a_writer_without_a_path_or_with_a_bad_one_never_raises(tmp_path: Path) -> None:
    EventWriter(None).emit("echo")
    EventWriter(tmp_path / "missing" / "events.jsonl").emit("echo")


def test_query_keys_keep_only_non_patient_values() -> None:
    q = Dataset()
    q.PatientName = "DOE^JANE"
    q.PatientID = ""
    q.AccessionNumber = "ACC-1"
    sps = Dataset()
    sps.ScheduledStationAETitle = "DICOMKIT"
    sps.ScheduledProcedureStepStartDate = "20261201-20261201"
    sps.Modality = ""
    q.ScheduledProcedureStepSequence = [sps]
    assert query_keys(q) == {
        "PatientName": None,
        "AccessionNumber": "ACC-1",
        "ScheduledStationAETitle": "DICOMKIT",
        "ScheduledProcedureStepStartDate": "20261201-20261201",
    }
    assert "DOE" not in json.dumps(query_keys(q))


def test_orthanc_dicom_log_lines_become_events(tmp_path: Path) -> None:
    # Lines as Orthanc 1.10.1 writes them with --verbose-dicom (tests/integration checks live).
    log = tmp_path / ORTHANC_LOG
    log.parent.mkdir(parents=True)
    log.write_text(
        "I1201 16:28:29.970599 CommandDispatcher.cpp:333] (dicom) Association Received from AET"
        " FINDSCU on IP 127.0.0.1\n"
        "I1201 16:28:29.971139 CommandDispatcher.cpp:961] (dicom) Received Echo Request\n"
        "I1201 16:28:31.451024 CommandDispatcher.cpp:333] (dicom) Association Received from AET"
        " NOBODY on IP 127.0.0.1\n"
        "W1201 16:28:31.451101 CommandDispatcher.cpp:602] Rejected association, because of a"
        " bad called AET in the request (WRONG)\n"
    )
    seen = read_feed(tmp_path, pacs_aet="ORTHANC")
    assert [(e.service, e.calling, e.called, e.get("accepted")) for e in seen] == [
        ("association", "FINDSCU", "ORTHANC", True),
        ("echo", "FINDSCU", "ORTHANC", None),
        ("association", "NOBODY", "WRONG", False),
    ]
    assert seen[0].t.endswith("+00:00")


def test_the_writer_starts_anew_when_the_file_is_removed_or_too_big(tmp_path: Path) -> None:
    import dicomkit.labevents as labevents

    path = events_path(tmp_path)
    writer = EventWriter(path)
    writer.emit("echo", "A")
    path.unlink()
    writer.emit("echo", "B")
    assert [e.calling for e in read_feed(tmp_path)] == ["B"]
    old, labevents.MAX_BYTES = labevents.MAX_BYTES, 10
    try:
        writer.emit("echo", "C")
    finally:
        labevents.MAX_BYTES = old
    assert [e.calling for e in read_feed(tmp_path)] == ["C"]
    assert "B" in path.with_name(path.name + ".1").read_text()
    writer.close()
