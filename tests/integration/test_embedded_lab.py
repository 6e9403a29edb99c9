"""`dicomkit up --engine embedded`: the lab's lifecycle on the embedded engine."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from dicomkit.engines.embedded import pacs_dir
from tests.conftest import make_config, start_lab, stop_lab, testdata


def test_up_status_store_down_volumes(tmp_path: Path) -> None:
    t0 = time.monotonic()
    lab = start_lab(tmp_path, "embedded")
    started = time.monotonic() - t0
    try:
        state = json.loads(lab.cfg.state_file.read_text())
        assert state["engine"] == "embedded"
        assert state["endpoints"]["dicomweb"] is True
        assert state["endpoints"]["mwl_port"] == lab.cfg.mwl_port != lab.cfg.dicom_port
        conf = json.loads((pacs_dir(lab.cfg) / "server.json").read_text())
        assert conf["aet"] == lab.cfg.pacs_aet
        assert conf["modalities"]["dicomkit"]["AET"] == lab.cfg.aet  # known, like in Orthanc

        status = lab.cli("status", "--json")
        assert status.code == 0, status.err
        assert all(s["healthy"] for s in status.json()["services"])
        dicomweb = f"http://{lab.cfg.host}:{lab.cfg.http_port}/dicom-web"
        assert status.json()["dicomweb"] == dicomweb  # the same root as Orthanc's plugin

        for args in (("echo",), ("echo", "--mwl")):
            r = lab.cli(*args, "--json")
            assert r.code == 0 and r.json()["ok"], r.err

        r = lab.cli("order", "create", "--patient-id", "P1", "--patient-name", "山田^太郎",
                    "--accession", "EMB-1", "--modality", "CT", "--json")  # fmt: skip
        assert r.code == 0, r.err
        r = lab.cli("worklist", "find", "--accession", "EMB-1", "--json")
        assert r.code == 0, r.err
        assert [m["patient_name"] for m in r.json()["matches"]] == ["山田^太郎"]
        # An unknown calling AE may echo but not query the worklist (as with Orthanc).
        assert lab.cli("echo", "--mwl", "--aet", "STRANGER").code == 0
        assert lab.cli("worklist", "find", "--aet", "STRANGER", "--json").code != 0

        r = lab.cli("store", str(testdata("CT_small.dcm")), "--json")
        assert r.code == 0, r.out + r.err
        body = httpx.get(f"http://{lab.cfg.host}:{lab.cfg.http_port}/status", timeout=5).json()
        assert body["counts"]["instances"] == 1
        assert body["counts"]["worklist_items"] == 1
        assert body["ports"] == {
            "dicom": lab.cfg.dicom_port,
            "mwl": lab.cfg.mwl_port,
            "http": lab.cfg.http_port,
        }
        # The stored instance through DICOMweb and on the page (one HTTP stack with the REST API).
        (study,) = httpx.get(f"{dicomweb}/studies", timeout=5).json()
        assert study["00100010"]["Value"] == [{"Alphabetic": "CompressedSamples^CT1"}]
        page = httpx.get(f"http://{lab.cfg.host}:{lab.cfg.http_port}/", timeout=5)
        assert page.status_code == 200 and "/rendered" in page.text
        logs = lab.cli("logs", "pacs")
        assert "ready" in logs.out
    finally:
        stop_lab(lab)
    assert (pacs_dir(lab.cfg) / "storage").exists()  # plain `down` keeps the data
    r = lab.cli("down", "--volumes", "--engine", "embedded")
    assert r.code == 0, r.err
    assert not pacs_dir(lab.cfg).exists()
    assert not lab.cfg.worklist_dir.exists()
    # `up` includes the RIS and process starts; the PACS itself is ready well under 2 s.
    assert started < 30


def test_port_taken_names_the_holder(tmp_path: Path) -> None:
    import socket

    cfg = make_config(tmp_path, "embedded")
    with socket.socket() as s:
        s.bind(("127.0.0.1", cfg.mwl_port))
        s.listen()
        from tests.conftest import Lab, _env_for

        lab = Lab("embedded", tmp_path, cfg)
        r = lab.cli("up", "--engine", "embedded", **_env_for(cfg))
        assert r.code == 5, r.out + r.err  # ExitCode.ENGINE
        assert str(cfg.mwl_port) in r.out + r.err
    assert lab.cli("status").code == 4  # nothing left running
