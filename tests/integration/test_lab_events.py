"""The lab's event feed (dicomkit/labevents.py) on a live lab, native Orthanc and the embedded
PACS: DCMTK's echoscu, findscu, storescu and curl's requests appear as the PACS saw them
(calling AE, called AE, match counts, SOP Instance UID), with no patient name anywhere."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess

import httpx

from dicomkit.labevents import PROBE_HEADER, LabEvent, mark, read_feed
from tests.conftest import Lab, need, testdata

NAME = "ZZFEED^JANE"  # must never reach the feed


def dcmtk(*args: str) -> subprocess.CompletedProcess[str]:
    need(args[0])
    env = {**os.environ, "TCP_NODELAY": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


def events(lab: Lab, since: object) -> list[LabEvent]:
    ep = lab.endpoints
    return read_feed(lab.cfg.lab_dir, since, ep.pacs_aet)  # type: ignore[arg-type]


def test_the_feed_shows_what_the_pacs_saw(lab: Lab) -> None:
    ep = lab.endpoints
    today = _dt.date.today().strftime("%Y%m%d")
    r = lab.cli("order", "create", "--patient-id", "PFEED", "--patient-name", NAME,
                "--accession", "ACC-FEED", "--station", "FEEDROOM")  # fmt: skip
    assert r.code == 0, r.err
    start = mark(lab.cfg.lab_dir)
    host, port, mwl = ep.host, str(ep.dicom_port), str(ep.mwl_port)
    assert dcmtk("echoscu", "-aet", "FINDSCU", "-aec", ep.pacs_aet, host, port).returncode == 0
    assert dcmtk("echoscu", "-aet", "FINDSCU", "-aec", "WRONGAE", host, port).returncode != 0
    sps = "ScheduledProcedureStepSequence[0]"
    found = dcmtk("findscu", "-W", "-aet", "FINDSCU", "-aec", ep.pacs_aet,
                  "-k", f"{sps}.ScheduledStationAETitle=FEEDROOM",
                  "-k", f"{sps}.ScheduledProcedureStepStartDate={today}",
                  "-k", "PatientName", host, mwl)  # fmt: skip
    assert found.returncode == 0 and found.stderr.count("Find Response") == 1, found.stderr
    by_name = dcmtk("findscu", "-W", "-aet", "FINDSCU", "-aec", ep.pacs_aet,
                    "-k", "PatientName=ZZFEED*", host, mwl)  # fmt: skip
    assert by_name.returncode == 0
    study = dcmtk("findscu", "-S", "-aet", "FINDSCU", "-aec", ep.pacs_aet, "-k",
                  "QueryRetrieveLevel=STUDY", "-k", "AccessionNumber=ACC-FEED", "-k",
                  "StudyInstanceUID", host, port)  # fmt: skip
    assert study.returncode == 0
    ct = testdata("CT_small.dcm")
    assert dcmtk("storescu", "-aet", "STORESCU", "-aec", ep.pacs_aet, host, port,
                 str(ct)).returncode == 0  # fmt: skip
    httpx.post(f"{ep.pacs_url}/tools/find", json={"Level": "Study", "Query": {}}, timeout=10)
    httpx.get(f"{ep.pacs_url}/studies", headers={PROBE_HEADER: "1"}, timeout=10)

    seen = events(lab, start)
    kinds = [(e.service, e.calling) for e in seen]
    assert ("echo", "FINDSCU") in kinds
    echo = next(e for e in seen if e.service == "echo")
    assert echo.called == ep.pacs_aet
    rejected = [e for e in seen if e.service == "association" and e.get("accepted") is False]
    assert [(e.calling, e.called) for e in rejected] == [("FINDSCU", "WRONGAE")]
    mwl_finds = [e for e in seen if e.service == "mwl-find"]
    assert len(mwl_finds) == 2, seen
    assert mwl_finds[0].get("matches") == 1
    assert mwl_finds[0].get("keys") == {"ScheduledStationAETitle": "FEEDROOM",
                                         "ScheduledProcedureStepStartDate": today}  # fmt: skip
    assert list(mwl_finds[1].get("keys").values()) == [None]  # the name's value is not kept
    finds = [e for e in seen if e.service == "find"]
    assert finds and finds[0].get("level") == "STUDY"
    assert finds[0].get("keys", {}).get("AccessionNumber") == "ACC-FEED"
    stores = [e for e in seen if e.service == "store"]
    assert [(e.calling, e.called, e.get("status")) for e in stores] == [
        ("STORESCU", ep.pacs_aet, 0)
    ]
    assert stores[0].get("sop_instance_uid") == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    paths = [(e.get("method"), e.get("path")) for e in seen if e.service == "http"]
    assert paths == [("POST", "/tools/find")]  # the probe is left out
    feed = (lab.cfg.lab_dir / "events.jsonl").read_text()
    assert "ZZFEED" not in feed
    log_text = "".join(p.read_text(errors="replace") for p in lab.cfg.log_dir.glob("*.log"))
    assert "ZZFEED" not in log_text
