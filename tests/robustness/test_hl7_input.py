"""HL7 v2 over MLLP into the real RIS process (``python -m dicomkit.ris --hl7-port``): orders
arrive as the same order and worklist item as ``POST /orders``; every bad message gets an ACK
naming the problem (or a clean close) and leaves nothing half created."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from tests import hl7util as h
from tests.conftest import free_port, wait_port
from tests.robustness.conftest import Ris, start_ris, stop

HL7_TIMEOUT = 2.0  # the server's per-message read deadline in these tests (default 30 s)


class Hl7Ris:
    def __init__(self, ris: Ris, hl7_port: int) -> None:
        self.ris = ris
        self.port = hl7_port

    def orders(self) -> dict[str, dict]:
        got = httpx.get(f"{self.ris.url}/orders", timeout=10).json()
        return {o["order"]["accession"]: o for o in got}

    def journal(self) -> list[dict]:
        return list(httpx.get(f"{self.ris.url}/hl7/messages", timeout=10).json())

    def snapshot(self) -> tuple[set[str], set[Path]]:
        return set(self.orders()), self.ris.wl_files()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hl7Ris]:
    port = free_port()
    ris = start_ris(
        tmp_path_factory.mktemp("hl7-sandbox"),
        "--hl7-port", str(port), "--hl7-timeout", str(HL7_TIMEOUT),
    )  # fmt: skip
    wait_port(port, ris.proc, ris.log)
    try:
        yield Hl7Ris(ris, port)
        ris.assert_contained()
    finally:
        stop(ris.proc)


def test_orm_creates_the_same_order_and_item_as_post_orders(server: Hl7Ris) -> None:
    ack = h.exchange(server.port, h.orm(accession="SAME-HL7"))
    assert h.ack_code(ack) == "AA", ack
    assert h.fields(ack)["MSA"][0][2] == "MSG0001"  # MSA-2 echoes MSH-10
    r = server.ris.post(
        {"patient_id": "P-HL7", "patient_name": "DOE^JANE", "accession": "SAME-HTTP",
         "modality": "CT", "study_desc": "CT HEAD WO CONTRAST", "birth_date": "19800101",
         "sex": "F", "scheduled_date": "20261201", "scheduled_time": "1015",
         "referring_physician": "WELBY^MARCUS", "procedure_code": "CT-HEAD"}
    )  # fmt: skip
    assert r.status_code == 201, r.text
    orders = server.orders()
    via_hl7, via_http = orders["SAME-HL7"], orders["SAME-HTTP"]
    assert {**via_hl7["order"], "accession": "-"} == {**via_http["order"], "accession": "-"}
    a = pydicom.dcmread(server.ris.worklist_dir / f"{via_hl7['worklist_item_id']}.wl")
    b = pydicom.dcmread(server.ris.worklist_dir / f"{via_http['worklist_item_id']}.wl")
    assigned = {"AccessionNumber", "StudyInstanceUID", "RequestedProcedureID"}
    for elem in b:
        if elem.keyword in assigned:
            continue
        if elem.keyword == "ScheduledProcedureStepSequence":
            sa, sb = a[elem.tag][0], elem[0]
            sa.ScheduledProcedureStepID = sb.ScheduledProcedureStepID
            assert sa == sb
        else:
            assert a[elem.tag] == elem, elem.keyword
    assert a.PatientName == "DOE^JANE" and a.ScheduledProcedureStepSequence[0].Modality == "CT"
    seen = server.journal()[-1]
    assert seen["message_type"] == "ORM^O01" and seen["ack"] == "AA"
    assert seen["accession"] == "SAME-HL7" and seen["order_control"] == "NW"


def test_omi_v251_with_tq1_start_time(server: Hl7Ris) -> None:
    ack = h.exchange(server.port, h.omi(accession="OMI-1", when="20261202083000"))
    assert h.ack_code(ack) == "AA", ack
    o = server.orders()["OMI-1"]
    assert (o["scheduled_date"], o["scheduled_time"]) == ("20261202", "083000")
    assert o["order"]["modality"] == "MR" and o["order"]["patient_name"] == "ROE^RICHARD"
    assert h.fields(ack)["MSH"][0][12] == "2.5.1"


def test_cancel_removes_order_and_item_and_unknown_cancel_is_ae(server: Hl7Ris) -> None:
    assert h.ack_code(h.exchange(server.port, h.orm(accession="CA-1"))) == "AA"
    item = server.orders()["CA-1"]["worklist_item_id"]
    ack = h.exchange(server.port, h.orm(accession="CA-1", control="CA"))
    assert h.ack_code(ack) == "AA", ack
    assert "CA-1" not in server.orders()
    assert not (server.ris.worklist_dir / f"{item}.wl").exists()
    ack = h.exchange(server.port, h.orm(accession="CA-1", control="CA"))
    assert h.ack_code(ack) == "AE" and h.err_locations(ack) == ["OBR-18"]
    assert "204" in h.fields(ack)["ERR"][0][3]  # unknown key identifier


def test_adt_a08_updates_demographics_in_open_items(server: Hl7Ris) -> None:
    for acc in ("A08-1", "A08-2"):
        assert h.ack_code(h.exchange(server.port, h.orm(accession=acc, patient_id="P-A08"))) == "AA"
    ack = h.exchange(server.port, h.adt_a08("P-A08", name="DOE^JANET^M", sex='""'))
    assert h.ack_code(ack) == "AA", ack
    assert "2 open order(s)" in h.fields(ack)["MSA"][0][3]
    for acc in ("A08-1", "A08-2"):
        o = server.orders()[acc]
        assert o["order"]["patient_name"] == "DOE^JANET^M"
        assert o["order"]["sex"] is None  # "" deletes (HL7 v2 2.5.3)
        assert o["order"]["birth_date"] == "19800101"  # empty: unchanged
        ds = pydicom.dcmread(server.ris.worklist_dir / f"{o['worklist_item_id']}.wl")
        assert ds.PatientName == "DOE^JANET^M" and ds.PatientSex == ""
    # A bad value changes nothing, in any of the patient's items.
    ack = h.exchange(server.port, h.adt_a08("P-A08", sex="X"))
    assert h.ack_code(ack) == "AE" and h.err_locations(ack) == ["PID-8"]
    assert server.orders()["A08-1"]["order"]["patient_name"] == "DOE^JANET^M"


BAD = {
    "no MSH": (b"PID|1||P1||DOE^J\rOBR|1\r", "AR", ["MSH"]),
    "wrong field separator": (h.orm(accession="BAD-1").replace(b"|", b"#"), "AR", ["MSH-1"]),
    "unknown message type": (h.orm(accession="BAD-2").replace(b"ORM^O01", b"ORU^R01"), "AR", ["MSH-9"]),
    "unknown trigger event": (h.orm(accession="BAD-3").replace(b"ORM^O01", b"ORM^O02"), "AR", ["MSH-9"]),
    "message type without trigger": (h.orm(accession="BAD-11").replace(b"ORM^O01", b"ORM"), "AR", ["MSH-9"]),
    "header cut after MSH-2": (b"MSH|^~\\&\r", "AR", ["MSH-9"]),
    "accession over SH 16": (h.orm(accession="BAD-4-" + "9" * 20), "AE", ["OBR-18"]),
    "patient ID over LO 64": (h.orm(accession="BAD-5", patient_id="P" * 65), "AE", ["PID-3"]),
    "non-UTF-8 body": (h.orm(accession="BAD-6", name="M\xdcLLER^J").replace(b"M\xc3\x9cLLER", b"M\xdcLLER"), "AR", ["MSH-18"]),
    "unknown modality": (h.orm(accession="BAD-7", modality="XX"), "AE", ["OBR-24"]),
    "bad birth date": (h.orm(accession="BAD-8", birth="19801332"), "AE", ["PID-7"]),
    "no OBR": (h.orm(accession="BAD-9").split(b"OBR|")[0], "AE", ["OBR"]),
    "unknown order control": (h.orm(accession="BAD-10", control="XO"), "AE", ["ORC-1"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_message_gets_an_ack_naming_the_field_and_creates_nothing(
    server: Hl7Ris, case: str
) -> None:
    message, code, where = BAD[case]
    before = server.snapshot()
    ack = h.exchange(server.port, message)
    assert h.ack_code(ack) == code, ack
    assert h.err_locations(ack) == where, ack
    assert server.snapshot() == before


def test_latin1_declared_in_msh18_is_accepted(server: Hl7Ris) -> None:
    msg = h.orm(accession="LATIN-1", name="MÜLLER^JÖRG", **{"f18": "8859/1"})
    ack = h.exchange(server.port, msg.decode().encode("latin-1"))
    assert h.ack_code(ack) == "AA", ack
    assert server.orders()["LATIN-1"]["order"]["patient_name"] == "MÜLLER^JÖRG"


def test_duplicate_accession_is_ae_and_the_first_order_stays(server: Hl7Ris) -> None:
    assert h.ack_code(h.exchange(server.port, h.orm(accession="DUP-1"))) == "AA"
    first = server.orders()["DUP-1"]
    ack = h.exchange(server.port, h.orm(accession="DUP-1", name="OTHER^PATIENT"))
    assert h.ack_code(ack) == "AE" and h.err_locations(ack) == ["OBR-18"]
    assert "205" in h.fields(ack)["ERR"][0][3]
    assert server.orders()["DUP-1"] == first


def test_duplicate_accession_raced_on_ten_connections_creates_one(server: Hl7Ris) -> None:
    codes: list[str] = []
    start = threading.Barrier(10)

    def one() -> None:
        with h.connect(server.port) as s:
            start.wait(10)
            s.sendall(h.frame(h.orm(accession="RACE-1")))
            codes.append(h.ack_code(h.read_ack(s)))

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == ["AA"] + ["AE"] * 9
    assert len([p for p in server.ris.wl_files()]) == len(server.orders())


def test_frame_split_across_reads(server: Hl7Ris) -> None:
    data = h.frame(h.orm(accession="SPLIT-1"))
    with h.connect(server.port) as s:
        for i in range(0, len(data) - 1, 7):  # all but the final <CR>, 7 bytes at a time
            s.sendall(data[i : min(i + 7, len(data) - 1)])
        assert not h.readable(s, 0.3), "answered before the end block arrived"
        s.sendall(data[-1:])
        ack = h.read_ack(s)
    assert h.ack_code(ack) == "AA", ack
    assert "SPLIT-1" in server.orders()


def test_two_frames_in_one_read_get_two_acks_in_order(server: Hl7Ris) -> None:
    both = h.frame(h.orm(accession="TWO-1", msg_id="M-A")) + h.frame(
        h.orm(accession="TWO-2", msg_id="M-B")
    )
    with h.connect(server.port) as s:
        s.sendall(both)
        buf = bytearray()
        first, second = h.read_ack(s, buf), h.read_ack(s, buf)
    assert [h.fields(a)["MSA"][0][1:3] for a in (first, second)] == [["AA", "M-A"], ["AA", "M-B"]]
    assert {"TWO-1", "TWO-2"} <= set(server.orders())


def test_client_that_never_sends_the_end_block_is_closed_in_bounded_time(server: Hl7Ris) -> None:
    before = server.snapshot()
    with h.connect(server.port) as s:
        s.sendall(h.frame(h.orm(accession="NEVER-1"))[:-2])  # no <FS><CR>
        t0 = time.monotonic()
        assert h.readable(s, HL7_TIMEOUT + 5), "the server kept the connection open"
        assert s.recv(100) == b""  # a clean close (FIN), no half answer
        assert time.monotonic() - t0 < HL7_TIMEOUT + 5
    assert server.snapshot() == before
    # and the listener still serves
    assert h.ack_code(h.exchange(server.port, h.orm(accession="AFTER-NEVER"))) == "AA"


def test_bytes_before_the_start_block_get_ar_then_close(server: Hl7Ris) -> None:
    before = server.snapshot()
    with h.connect(server.port) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n" + h.frame(h.orm(accession="JUNK-1")))
        ack = h.read_ack(s)
        assert h.ack_code(ack) == "AR"
        assert s.recv(100) == b""
    assert server.snapshot() == before


def test_oversized_message_gets_ar_then_close(server: Hl7Ris) -> None:
    before = server.snapshot()
    big = h.orm(accession="BIG-1").replace(b"PV1|", b"NTE|1||" + b"x" * 70_000 + b"\rPV1|")
    with h.connect(server.port) as s:
        # The server stops reading at 64 KiB, answers AR and closes: our send may be cut
        # short by a reset, and then the AR may be lost with it. Either way: nothing created.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(h.frame(big))
        with contextlib.suppress(ConnectionError):
            assert h.ack_code(h.read_ack(s)) == "AR"
    assert server.snapshot() == before
