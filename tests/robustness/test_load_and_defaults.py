"""Load on a real lab (native Orthanc and the embedded PACS), then the security defaults of the
same lab: loopback only, Orthanc's Lua and REST file writes off, no patient names in logs.

200 orders are POSTed by 16 threads while two threads loop MWL C-FINDs and parse every answer;
20 associations store into the embedded PACS at once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Lab, start_lab, stop_lab
from tests.robustness.conftest import ORDER, make_instances

pytestmark = pytest.mark.timeout(150)

N_ORDERS = 200
PHI = "ZZPHI"  # in every synthetic patient name: must never reach a log


@pytest.fixture(scope="module", params=["native", "embedded"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = start_lab(tmp_path_factory.mktemp(f"load-{request.param}"), request.param)
    try:
        yield lab
    finally:
        stop_lab(lab)


def complete(ds: Any) -> bool:
    """An MWL answer with every key a modality relies on (PS3.4 K.6-1 Type 1)."""
    sps = ds.get("ScheduledProcedureStepSequence")
    return bool(
        ds.get("AccessionNumber")
        and ds.get("PatientName")
        and ds.get("PatientID")
        and ds.get("StudyInstanceUID")
        and ds.get("RequestedProcedureID")
        and sps
        and len(sps) == 1
        and sps[0].get("Modality")
        and sps[0].get("ScheduledProcedureStepID")
        and sps[0].get("ScheduledProcedureStepStartDate")
    )


def test_200_concurrent_orders_while_mwl_queries_loop(lab: Lab) -> None:
    from dicomkit.dicom.net import Peer
    from dicomkit.dicom.scu import find_worklist_datasets
    from dicomkit.dicom.worklist import WorklistQuery

    ep = lab.endpoints
    mwl = Peer("127.0.0.1", ep.mwl_port, ep.pacs_aet)
    query = WorklistQuery(patient_name=f"{PHI}*")
    stop = threading.Event()
    queries: list[int] = []
    per_thread: dict[int, list[int]] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def loop_queries() -> None:
        while not stop.is_set():
            try:
                answers = find_worklist_datasets(mwl, "DICOMKIT", query, timeout=20)
            except Exception as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            incomplete = [str(a.get("AccessionNumber")) for a in answers if not complete(a)]
            with lock:
                queries.append(len(answers))
                per_thread.setdefault(threading.get_ident(), []).append(len(answers))
                if incomplete:
                    failures.append(f"incomplete items {incomplete}")

    def post(i: int) -> int:
        body = {**ORDER, "accession": f"LD-{i}", "patient_id": f"PLD{i}",
                "patient_name": f"{PHI}^LOAD{i}"}  # fmt: skip
        return httpx.post(f"{ep.ris_url}/orders", json=body, timeout=30).status_code

    loopers = [threading.Thread(target=loop_queries) for _ in range(2)]
    for t in loopers:
        t.start()
    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(post, range(N_ORDERS)))
        posted_in = time.monotonic() - t0
        time.sleep(0.5)  # a few more queries after the last order
    finally:
        stop.set()
        for t in loopers:
            t.join(60)
    assert codes == [201] * N_ORDERS
    assert failures == [], failures[:5]
    assert len(queries) >= 4, queries
    # Within one thread each query starts after the last ended, and the worklist only grows:
    # an item once seen is never missing later.
    assert all(seen == sorted(seen) for seen in per_thread.values()), per_thread
    final = find_worklist_datasets(mwl, "DICOMKIT", query, timeout=30)
    assert len(final) == N_ORDERS and all(complete(a) for a in final)
    assert {str(a.AccessionNumber) for a in final} == {f"LD-{i}" for i in range(N_ORDERS)}
    orders = httpx.get(f"{ep.ris_url}/orders", timeout=30).json()
    assert {o["order"]["accession"] for o in orders} >= {f"LD-{i}" for i in range(N_ORDERS)}
    logging.getLogger(__name__).warning(
        "%s: %d orders in %.1f s, %d MWL queries, largest answer %d",
        lab.engine, N_ORDERS, posted_in, len(queries), max(queries),
    )  # fmt: skip


def test_20_parallel_associations_store_and_index(lab: Lab, tmp_path: Path) -> None:
    if lab.engine != "embedded":
        pytest.skip("the embedded PACS's association handling is the one under test")
    from dicomkit.dicom.net import Peer
    from dicomkit.dicom.scu import store_files

    ep = lab.endpoints
    before = httpx.get(f"{ep.pacs_url}/statistics", timeout=10).json()["CountInstances"]
    batches = [make_instances(tmp_path / f"a{i}", 10, patient=f"{PHI}^PAR{i}") for i in range(20)]
    peer = Peer("127.0.0.1", ep.dicom_port, ep.pacs_aet)
    go = threading.Barrier(20)

    def one(files: list[Path]) -> list[int | None]:
        go.wait()
        return [r.status for r in store_files(peer, "DICOMKIT", files, timeout=60).results]

    with ThreadPoolExecutor(20) as pool:
        statuses = [s for batch in pool.map(one, batches) for s in batch]
    assert statuses == [0x0000] * 200
    stats = httpx.get(f"{ep.pacs_url}/statistics", timeout=10).json()
    assert stats["CountInstances"] == before + 200
    from dicomkit.dicom.scu import StudyQuery, find_studies

    studies = find_studies(peer, "DICOMKIT", StudyQuery(patient_name=f"{PHI}^PAR*"), timeout=30)
    assert len(studies) == 20 and all(s["instances"] == "10" for s in studies)


# ---- security defaults, on the lab that just took the load --------------------------------


def _listeners() -> dict[int, set[str]]:
    """Listening TCP sockets from /proc/net/tcp{,6}: port -> local addresses (hex)."""
    out: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":  # LISTEN
                addr, port = parts[1].rsplit(":", 1)
                out.setdefault(int(port, 16), set()).add(addr)
    return out


def test_every_server_listens_on_loopback_only(lab: Lab) -> None:
    ep = lab.endpoints
    listening = _listeners()
    ours = {ep.ris_port, ep.hl7_port, ep.mpps_port} | (
        {ep.dicom_port, ep.mwl_port, ep.http_port} if lab.engine == "embedded" else set()
    )
    for port in ours:
        assert port in listening, f"nothing listens on {port}"
        assert listening[port] == {"0100007F"}, (port, listening[port])  # 127.0.0.1 only


@pytest.mark.xfail(
    strict=True,
    reason="Orthanc 1.10.1 has no option to bind an address: its DICOM and HTTP ports listen "
    "on 0.0.0.0 (HTTP refuses remote clients via RemoteAccessAllowed=false; DICOM does not). "
    "Decision: `dicomkit up` on the native engine warns (see test below); the Docker and "
    "embedded engines bind 127.0.0.1.",
)
def test_native_orthanc_listens_on_loopback_only(lab: Lab) -> None:  # upstream limit
    if lab.engine != "native":
        pytest.xfail("Orthanc only")
    ep = lab.endpoints
    listening = _listeners()
    for port in (ep.dicom_port, ep.http_port):
        assert listening.get(port) == {"0100007F"}, (port, listening.get(port))


def test_orthanc_runs_without_lua_and_rest_file_writes(lab: Lab) -> None:
    if lab.engine != "native":
        pytest.skip("Orthanc's configuration")
    conf = json.loads((lab.cfg.lab_dir / "orthanc" / "orthanc.json").read_text())
    assert conf["ExecuteLuaEnabled"] is False
    assert conf["RestApiWriteToFileSystemEnabled"] is False
    assert conf["RemoteAccessAllowed"] is False
    # And the running Orthanc refuses both.
    url = lab.endpoints.pacs_url
    r = httpx.post(f"{url}/tools/execute-script", content=b'print("x")', timeout=10)
    assert r.status_code == 403, r.text
    r = httpx.post(
        f"{url}/instances/0/export", content=str(lab.home / "exported.dcm").encode(), timeout=10
    )
    assert r.status_code in (403, 404) and not (lab.home / "exported.dcm").exists()


def test_no_patient_names_in_the_server_logs(lab: Lab) -> None:
    logs = list((lab.cfg.log_dir).glob("*.log"))
    assert logs
    logs.append(lab.cfg.lab_dir / "events.jsonl")  # the lab's event feed (labevents.py)
    assert logs[-1].is_file()
    for log in logs:
        text = log.read_text(errors="replace")
        assert PHI not in text, f"a patient name is in {log.name}"


def test_ris_beyond_loopback_without_auth_warns(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked in-process with uvicorn.run replaced: nothing is ever bound beyond loopback."""
    import uvicorn

    from dicomkit.ris import __main__ as ris_main

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    base = ["--db", str(tmp_path / "db"), "--worklist-dir", str(tmp_path / "wl")]
    cases = [("0.0.0.0", True), ("192.0.2.10", True), ("::", True), ("pacs.example", True)]
    cases += [("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("localhost", False)]
    for host, warns in cases:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="dicomkit.ris"):
            ris_main.main([*base, "--host", host])
        warned = any("beyond loopback" in r.getMessage() for r in caplog.records)
        assert warned is warns, host
        assert calls[-1]["host"] == host
    from dicomkit.config import LabConfig

    assert LabConfig().host == "127.0.0.1"  # the lab's default for every service


def test_lessons_use_synthetic_patients_only() -> None:
    """Every patient name in the course is one of the tutor's synthetic patients (or a format
    placeholder), and no lesson text carries a real-looking birth date."""
    import re

    from dicomkit.tutor.steps.lesson02_place_an_order import SYNTHETIC_PATIENTS
    from dicomkit.tutor.steps.lesson14_the_scheduled_workflow import PATIENT as CAPSTONE_PATIENT

    root = Path(__file__).resolve().parents[2] / "lessons"
    allowed = set(SYNTHETIC_PATIENTS) | {CAPSTONE_PATIENT, "FAMILY^GIVEN", "DOE^JANE"}
    texts = {p.name: p.read_text() for p in [*root.glob("*.md"), root / "lessons.toml"]}
    assert len(texts) >= 9
    for name, text in texts.items():
        # (?!\d): not an HL7 message type and trigger event (ORM^O01, ADT^A08)
        for pn in re.findall(r"\b[A-Z][A-Za-z]*\^[A-Za-z^]+(?!\d)", text):
            assert pn in allowed, f"{name}: patient name {pn!r} is not a synthetic one"
        birth = r"birth[^\n]{0,40}?\b(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\b"
        assert not re.search(birth, text, re.IGNORECASE), f"{name}: a birth date"
    assert all(p.startswith("TUTOR^") for p in (*SYNTHETIC_PATIENTS, CAPSTONE_PATIENT))


def test_native_up_warns_that_orthanc_listens_on_every_interface(tmp_path: Path) -> None:
    from tests.conftest import engine_available, make_config

    if not engine_available("native")[0]:
        pytest.skip("Orthanc is not installed")
    cfg = make_config(tmp_path, "native")
    lab = Lab("native", tmp_path, cfg)
    env = {
        "DICOMKIT_DICOM_PORT": str(cfg.dicom_port),
        "DICOMKIT_HTTP_PORT": str(cfg.http_port),
        "DICOMKIT_RIS_PORT": str(cfg.ris_port),
        "DICOMKIT_HL7_PORT": str(cfg.hl7_port),
        "DICOMKIT_MPPS_PORT": str(cfg.mpps_port),
    }
    r = lab.cli("up", "--engine", "native", **env)
    try:
        assert r.code == 0, r.err
        assert "listens on every interface" in r.err
    finally:
        lab.cli("down", "--volumes")
