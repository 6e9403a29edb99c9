"""Bad input against the real RIS (uvicorn on a free port, never the TestClient, which decodes
paths twice): every bad order gets a 4xx that names the problem and leaves nothing behind;
nothing is ever written outside the worklist folder; every `.wl` parses.

The module ends with the containment check over everything the tests before it sent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.robustness.conftest import ORDER, Ris, files_under, start_ris, stop

pytestmark = pytest.mark.timeout(120)

TOKEN = "dkrobust"  # in every path-like value: no file with it may appear anywhere


def order(acc: str, **over: Any) -> dict[str, Any]:
    return {**ORDER, "accession": acc, **over}


def raw_http(port: int, data: bytes, *, timeout: float = 5.0, shut: bool = False) -> bytes:
    """Send bytes as they are (no client normalises the path or fixes the headers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response[9:12])


def body_of(response: bytes) -> Any:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


def get_raw(ris: Ris, target: str, method: str = "GET") -> bytes:
    return raw_http(
        ris.port, f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )


# ---- one bad field at a time: 422, the field named, the rule named, nothing written ----------

BAD_FIELDS = [
    ("accession", "A" * 17, "16"),
    ("patient_id", "P" * 65, "64"),
    ("study_desc", "D" * 65, "64"),
    ("patient_name", "N" * 65, "64"),
    ("referring_physician", "R" * 65, "64"),
    ("station_aet", "S" * 17, "16"),
    ("procedure_code", "C" * 17, "16"),
    ("accession", "ACC\x00", "control character"),
    ("patient_name", "DOE^JANE\n", "control character"),
    ("study_desc", "XR\tCHEST", "control character"),
    ("patient_id", "P\x1b1", "control character"),
    ("accession", "ACC\x7f", "control character"),
    ("accession", "A\\B", "backslash"),
    ("patient_name", "DOE\\JANE", "backslash"),
    ("study_desc", "XR\\CHEST", "backslash"),
    ("station_aet", "CT\\1", "backslash"),
    ("birth_date", "20260230", "calendar date"),
    ("birth_date", "2026-01-01", "YYYYMMDD"),
    ("scheduled_date", "20261301", "calendar date"),
    ("scheduled_date", "abcdefgh", "YYYYMMDD"),
    ("scheduled_time", "2460", "time of day"),
    ("scheduled_time", "12:61", "time of day"),
    ("scheduled_time", "noon", "HHMM"),
    ("accession", "ACC-é", "ASCII"),
    ("patient_id", "患者1", "ASCII"),
    ("station_aet", "ÉCHO", "ASCII"),
    ("sex", "X", "defined terms"),
    ("modality", "../CT", "upper-case"),
    ("modality", "XRAY", "not a DICOM modality"),
    ("patient_name", "DOE\ud800", "surrogate"),
    ("study_desc", "\udfff", "surrogate"),
    ("accession", "   ", "blank"),
    ("patient_name", "A=B=C=D", "component groups"),
    ("patient_name", "A^B^C^D^E^F", "components"),
    ("accession", 1001, "string"),
    ("accession", None, "string"),
]


@pytest.mark.parametrize(("field", "value", "fragment"), BAD_FIELDS)
def test_bad_field_is_422_naming_it_and_writes_nothing(
    ris: Ris, field: str, value: Any, fragment: str
) -> None:
    before = files_under(ris.sandbox)
    acc = f"BAD-{BAD_FIELDS.index((field, value, fragment))}"
    body = order(acc, **{field: value})
    r = ris.post(body)
    assert r.status_code == 422, r.text
    d = r.json()
    assert field in d["fields"], d
    assert fragment in d["fields"][field], d["fields"][field]
    assert d["hint"]
    assert {p for p in files_under(ris.sandbox) if p.suffix == ".wl"} == {
        p for p in before if p.suffix == ".wl"
    }
    if field != "accession":
        assert httpx.get(f"{ris.url}/orders/{acc}", timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "application/json", 422),
        (b"null", "application/json", 422),
        (b"[1, 2]", "application/json", 422),
        (b"{not json", "application/json", 422),
        (b"\xff\xfe\x00garbage", "application/json", 422),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),
        (json.dumps(order("CT-1")).encode(), "text/plain", 422),
        (json.dumps(order("XF-1", path=f"../../{TOKEN}")).encode(), "application/json", 422),
        (json.dumps({**order("BIG-1"), "accession": "9" * 5000}).encode(), "application/json", 422),
    ],
    ids=[
        "empty",
        "null",
        "array",
        "truncated",
        "binary",
        "deep-nesting",
        "text-plain",
        "extra-field",
        "huge-accession",
    ],
)
def test_malformed_bodies_are_4xx_with_a_json_error(
    ris: Ris, body: bytes, content_type: str, status: int
) -> None:
    before = ris.wl_files()
    r = httpx.post(
        f"{ris.url}/orders", content=body, headers={"content-type": content_type}, timeout=10
    )
    assert r.status_code == status, r.text
    assert r.json().get("error") or r.json().get("detail")
    assert ris.wl_files() == before


# ---- what must pass: boundaries, Unicode names, path-like values that stay values -----------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accession", "A" * 16),
        ("patient_id", "P" * 64),
        ("study_desc", "D" * 64),
        ("patient_name", "N" * 64),
        ("station_aet", "S" * 16),
        ("procedure_code", "C" * 16),
    ],
)
def test_values_at_the_limit_are_accepted_and_written_whole(
    ris: Ris, field: str, value: str
) -> None:
    acc = value if field == "accession" else f"EDGE-{field[:10]}"
    r = ris.post(order(acc, **{field: value}))
    assert r.status_code == 201, r.text
    ds = pydicom.dcmread(ris.worklist_dir / f"{r.json()['worklist_item_id']}.wl")
    kw = {"accession": "AccessionNumber", "patient_id": "PatientID",
          "study_desc": "RequestedProcedureDescription", "patient_name": "PatientName"}  # fmt: skip
    if field in kw:
        assert str(ds[kw[field]].value) == value
    elif field == "station_aet":
        assert ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == value
    else:
        assert ds.RequestedProcedureCodeSequence[0].CodeValue == value


@pytest.mark.parametrize(
    "name", ["Müller^Zoë", "山田^太郎=やまだ^たろう", "Ελληνικά^Όνομα", "ÅÄÖ^æøå"]
)
def test_non_ascii_names_are_stored_as_utf8(ris: Ris, name: str) -> None:
    acc = f"U-{abs(hash(name)) % 10**8}"
    r = ris.post(order(acc, patient_name=name, study_desc="Röntgen Thorax"))
    assert r.status_code == 201, r.text
    ds = pydicom.dcmread(ris.worklist_dir / f"{r.json()['worklist_item_id']}.wl")
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == name


def test_duplicate_accession_is_409_and_the_first_order_stays(ris: Ris) -> None:
    assert ris.post(order("DUP-1")).status_code == 201
    before = ris.wl_files()
    r = ris.post(order("DUP-1", patient_name="OTHER^ONE"))
    assert r.status_code == 409 and "DUP-1" in r.json()["error"] and r.json()["hint"]
    assert ris.wl_files() == before
    got = httpx.get(f"{ris.url}/orders/DUP-1", timeout=5).json()
    assert got["order"]["patient_name"] == ORDER["patient_name"]


PATH_LIKE = {
    "accession": "../../" + TOKEN,
    "patient_id": f"../../../../tmp/{TOKEN}",
    "station_aet": "../X",
    "procedure_code": f"/tmp/{TOKEN}"[:16],
    "study_desc": f"../../../../../../../../tmp/{TOKEN}.wl",
    "patient_name": f"..^..^{TOKEN}",
    "referring_physician": "/etc/passwd",
}


def test_path_like_values_in_every_field_stay_values(ris: Ris) -> None:
    before = files_under(ris.sandbox.parent)
    r = ris.post(dict(ORDER, **PATH_LIKE))
    assert r.status_code == 201, r.text
    item = ris.worklist_dir / f"{r.json()['worklist_item_id']}.wl"
    ds = pydicom.dcmread(item)
    assert ds.AccessionNumber == PATH_LIKE["accession"]
    assert ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "../X"
    assert files_under(ris.sandbox.parent) - before == {item}
    assert not list(Path("/tmp").glob(f"{TOKEN}*"))


@pytest.mark.parametrize(
    ("accession", "target"),
    [
        ("..", "/orders/%2e%2e"),
        ("..", "/orders/%2E%2E"),
        ("%2e%2e", "/orders/%252e%252e"),
        ("../x", "/orders/%2e%2e%2fx"),
        ("..%2fx", "/orders/..%252fx"),
    ],
)
def test_encoded_dots_through_the_real_server_name_one_order(
    ris: Ris, accession: str, target: str
) -> None:
    """uvicorn decodes the path once; the accession is whatever that yields, never a path."""
    r = ris.post(order(accession))
    assert r.status_code in (201, 409), r.text
    resp = get_raw(ris, target)
    assert status_of(resp) == 200, resp[:300]
    assert body_of(resp)["order"]["accession"] == accession


@pytest.mark.parametrize(
    "target",
    [
        "/orders/%2e%2e%2f%2e%2e%2fworklists",
        "/orders/../../etc/passwd",
        "/orders/%2e%2e/%2e%2e/ris/orders.sqlite3",
        "/orders/%00",
        "/orders/%ff%fe",
        "/orders/" + "A" * 8000,
    ],
)
def test_traversal_in_the_url_is_404_and_deletes_nothing(ris: Ris, target: str) -> None:
    before = files_under(ris.sandbox)
    for method in ("GET", "DELETE"):
        resp = get_raw(ris, target, method)
        assert status_of(resp) in (400, 404, 414, 431), resp[:300]
        if status_of(resp) == 404:
            assert body_of(resp)["hint"]
    assert files_under(ris.sandbox) >= {p for p in before if p.suffix == ".wl"}
    assert ris.wl_files() == {p for p in before if p.suffix == ".wl"}


# ---- the wire: big, lying and slow clients --------------------------------------------------


def test_ten_megabyte_body_is_413_before_it_is_read(ris: Ris) -> None:
    size = 10 * 1024 * 1024
    head = (
        f"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", ris.port), timeout=5) as s:
        s.sendall(head + b"{" + b" " * 65536)
        resp = b""
        while b"too large" not in resp:
            chunk = s.recv(65536)
            if not chunk:
                break
            resp += chunk
    assert status_of(resp) == 413 and b"too large" in resp
    # Chunked, so no Content-Length to refuse up front: the bytes are counted.
    t0 = time.monotonic()

    def chunks() -> Any:
        yield b'{"patient_id": "'
        for _ in range(160):  # 10 MB in 64 KiB chunks; the server stops reading early
            yield b"x" * 65536

    try:
        r = httpx.post(f"{ris.url}/orders", content=chunks(), timeout=10)
        assert r.status_code == 413
    except httpx.TransportError:
        pass  # the server answered 413 and closed while we were still sending
    assert time.monotonic() - t0 < 10


def test_content_length_shorter_than_the_body(ris: Ris) -> None:
    body = json.dumps(order("LIE-SHORT")).encode()
    head = (
        "POST /orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nContent-Length: 10\r\n\r\n"
    )
    resp = raw_http(ris.port, head.encode() + body)
    assert status_of(resp) == 422  # the first 10 bytes are not an order
    # ... and the rest is not taken for a request of its own that creates anything.
    assert httpx.get(f"{ris.url}/orders/LIE-SHORT", timeout=5).status_code == 404


def test_content_length_longer_than_the_body(ris: Ris) -> None:
    body = json.dumps(order("LIE-LONG")).encode()
    head = f"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body) + 500}\r\n\r\n"
    # Then EOF: the promised bytes never come.
    resp = raw_http(ris.port, head.encode() + body, shut=True)
    assert resp == b"" or status_of(resp) in (400, 422), resp[:200]
    assert httpx.get(f"{ris.url}/orders/LIE-LONG", timeout=5).status_code == 404


@pytest.mark.parametrize("value", ["-1", "abc", "1, 2", "99999999999999999999999"])
def test_invalid_content_length_is_400_or_413(ris: Ris, value: str) -> None:
    req = f"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n{{}}"
    assert status_of(raw_http(ris.port, req.encode())) in (400, 413)


def test_slow_and_silent_clients_are_cut_off_and_others_are_served(tmp_path: Path) -> None:
    """A client that sends nothing, or one byte at a time (slowloris), holds a connection only
    until the request deadline; meanwhile everyone else is served at once."""
    ris = start_ris(tmp_path, "--request-timeout", "2")
    try:
        closed: dict[str, float] = {}

        def silent() -> None:
            with socket.create_connection(("127.0.0.1", ris.port), timeout=10) as s:
                t0 = time.monotonic()
                assert s.recv(10) == b""
                closed["silent"] = time.monotonic() - t0

        def dribble() -> None:
            req = json.dumps(order("SLOW-1")).encode()
            data = (
                b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(req)}\r\n\r\n".encode()
                + req
            )
            with socket.create_connection(("127.0.0.1", ris.port), timeout=10) as s:
                t0 = time.monotonic()
                try:
                    for b in data:
                        s.send(bytes([b]))
                        time.sleep(0.1)
                except OSError:
                    pass
                closed["dribble"] = time.monotonic() - t0

        threads = [threading.Thread(target=f) for f in (silent, dribble)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=ris.url, timeout=5) as c:
            for _ in range(20):
                t0 = time.monotonic()
                assert c.get("/healthz").status_code == 200
                assert time.monotonic() - t0 < 1.0
                time.sleep(0.1)
        for t in threads:
            t.join(15)
        assert 1.5 < closed["silent"] < 6, closed
        assert closed["dribble"] < 6, closed  # far less than the ~25 s the dribble needs
        assert httpx.get(f"{ris.url}/orders/SLOW-1", timeout=5).status_code == 404
        # A keep-alive client that sends whole requests is not cut off by the deadline.
        with httpx.Client(base_url=ris.url, timeout=5) as c:
            for _ in range(3):
                assert c.get("/healthz").status_code == 200
                time.sleep(1.2)
        assert "no whole request within 2 s" in ris.log.read_text()
    finally:
        stop(ris.proc)


# ---- property-based: the OpenAPI schema, and near-valid orders with hostile characters ------


def test_openapi_fuzzing_finds_no_server_error(ris: Ris) -> None:
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{ris.url}/openapi.json")
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = op.label

            @given(case=op.as_strategy(generation_mode=mode))
            @settings(
                max_examples=25,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                r = case.call(timeout=10)
                seen.setdefault(label, set()).add(r.status_code)  # noqa: B023 (run at once)
                assert r.status_code < 500, (case.as_curl_command(), r.text)

            with contextlib.suppress(Unsatisfiable):  # no invalid input for GET /healthz
                run()
    assert set(seen) >= {"POST /orders", "GET /orders/{accession}", "DELETE /orders/{accession}"}


_HOSTILE = st.text(
    alphabet=st.sampled_from([*"AZaz09 ^=-_./\\%~:*?é山\x00\n\x1b\x7f", "\ud800", "\u202e"]),
    max_size=20,
)


_FIELDS = [*sorted(ORDER), "station_aet", "procedure_code", "referring_physician", "birth_date",
           "scheduled_time", "sex"]  # fmt: skip


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(_FIELDS), value=_HOSTILE, n=st.integers(0, 10**9))
def test_near_valid_orders_with_hostile_characters(
    ris: Ris, field: str, value: str, n: int
) -> None:
    acc = value if field == "accession" else f"H{n}"
    r = ris.post(order(acc, **{field: value}))
    assert r.status_code in (201, 409, 422), r.text
    if r.status_code == 201:
        item = ris.worklist_dir / f"{r.json()['worklist_item_id']}.wl"
        assert pydicom.dcmread(item).AccessionNumber == r.json()["order"]["accession"]
    elif r.status_code == 422:
        assert field in r.json()["fields"]


# ---- and after everything above ----------------------------------------------------------


def test_after_all_of_it_nothing_outside_and_every_item_parses(ris: Ris) -> None:
    ris.assert_contained()
    assert not [p for p in files_under(ris.sandbox.parent) if TOKEN in p.name]
    assert not list(Path("/tmp").glob(f"{TOKEN}*"))
    log = ris.log.read_text()
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
    assert httpx.get(f"{ris.url}/healthz", timeout=5).json()["orders"] == len(ris.wl_files())
