"""Faults injected into real labs: the PACS SIGKILLed in the middle of a 200-file store, a full
disk (a 2 MB tmpfs) under the embedded PACS, PACS and RIS killed mid-work, a damaged progress
file. Nothing acknowledged may be lost; every failure must be named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.conftest import Lab, _env_for, make_config, start_lab, stop_lab, testdata
from tests.robustness.conftest import ORDER, make_instances, start_pacs, stop

pytestmark = pytest.mark.timeout(150)


def pacs_pid(lab: Lab) -> int:
    state = json.loads(lab.cfg.state_file.read_text())
    return int(state["services"]["pacs"]["pid"])


def instance_count(lab: Lab) -> int:
    r = httpx.get(f"http://127.0.0.1:{lab.cfg.http_port}/statistics", timeout=10)
    return int(r.json()["CountInstances"])


def restart(lab: Lab) -> None:
    """`dicomkit down` + `dicomkit up` in the same home, on the same ports."""
    env = _env_for(lab.cfg)
    assert lab.cli("down", **env).code == 0
    r = lab.cli("up", "--engine", lab.engine, "--json", **env)
    assert r.code == 0, r.out + r.err


@pytest.mark.parametrize("engine", ["native", "embedded"])
def test_pacs_killed_mid_store_then_resume_sends_only_the_rest(tmp_path: Path, engine: str) -> None:
    lab = start_lab(tmp_path / "home", engine)
    try:
        files = make_instances(tmp_path / "images", 200, patient="TEST^KILLED")
        uid_of = {str(f): str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                  for f in files}  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomkit", "store", str(tmp_path / "images"), "--json"],
            env=lab.env(**_env_for(lab.cfg)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while instance_count(lab) < 40:  # well into the batch
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(pacs_pid(lab), signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (1, 3), err
        first = json.loads(out)
        ok = {f["path"] for f in first["files"] if f["ok"]}
        not_stored = set(first["not_stored"])
        assert ok and not_stored, first["sent"]
        assert ok | not_stored == set(uid_of) and not ok & not_stored
        assert all(f["error"] for f in first["files"] if not f["ok"])

        restart(lab)
        held = instance_count(lab)
        assert held >= len(ok)  # nothing acknowledged was lost in the crash
        r = lab.cli("store", str(tmp_path / "images"), "--resume", "--json", **_env_for(lab.cfg))
        assert r.code == 0, r.out + r.err
        second = r.json()
        assert {f["path"] for f in second["files"]} == not_stored  # only those are sent
        assert second["already_stored"] == len(ok)
        assert instance_count(lab) == 200  # all of them, each once
    finally:
        stop_lab(lab)


def test_disk_full_under_the_embedded_pacs(tmp_path: Path) -> None:
    """A real ENOSPC: the storage area on a 2 MB tmpfs (needs root and mount)."""
    import numpy as np
    from pydicom.uid import generate_uid
    from pynetdicom import AE

    storage = tmp_path / "storage"
    storage.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(storage)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    pacs = None
    try:
        pacs = start_pacs(tmp_path / "pacs", storage_dir=str(storage))
        big = pydicom.dcmread(testdata("CT_small.dcm"))
        big.Rows = big.Columns = 800
        big.PixelData = np.zeros((800, 800), dtype=np.uint16).tobytes()  # 1.3 MB each

        def send(ds: pydicom.Dataset) -> int:
            ae = AE(ae_title="DICOMKIT")
            ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
            assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title="ORTHANC")
            assert assoc.is_established
            try:
                return int(assoc.send_c_store(ds).Status)
            finally:
                assoc.release()

        statuses = {}
        for _ in range(3):  # the first fits, the second cannot
            uid = generate_uid()
            big.SOPInstanceUID = big.file_meta.MediaStorageSOPInstanceUID = uid
            statuses[uid] = send(big)
        acked = {u for u, s in statuses.items() if s == 0x0000}
        assert 0xA700 in statuses.values(), statuses  # Refused: Out of resources
        assert set(statuses.values()) <= {0x0000, 0xA700}
        leftovers = [p for p in storage.rglob("*.tmp")]
        assert leftovers == []  # no partial file
        stored = [p for p in (storage / "files").rglob("*.dcm")]
        assert len(stored) == len(acked)
        assert all(pydicom.dcmread(p).SOPInstanceUID in acked for p in stored)
        assert "storage full" in pacs.log.read_text() or "full" in pacs.log.read_text()

        stop(pacs.proc)  # ... and after a restart the index agrees with the files
        pacs = start_pacs(tmp_path / "pacs", storage_dir=str(storage))
        assert pacs.stats()["CountInstances"] == len(acked)
        found = httpx.post(
            f"http://127.0.0.1:{pacs.http_port}/tools/find",
            json={"Level": "Instance", "Query": {}, "Expand": True},
            timeout=10,
        ).json()
        assert {i["MainDicomTags"]["SOPInstanceUID"] for i in found} == acked
    finally:
        if pacs is not None:
            stop(pacs.proc)
        subprocess.run(["umount", str(storage)], check=False)


def test_pacs_and_ris_killed_mid_work_lose_nothing_acknowledged(tmp_path: Path) -> None:
    """Orders and C-STOREs flow while both services are SIGKILLed and the lab is brought up
    again: every order answered 201 and every instance answered Success is still there."""
    from dicomkit.dicom.net import Peer
    from dicomkit.dicom.scu import store_files

    lab = start_lab(tmp_path / "home", "embedded")
    try:
        env = _env_for(lab.cfg)
        files = make_instances(tmp_path / "images", 80, patient="TEST^CRASH")
        acked_orders: list[str] = []
        acked_uids: list[str] = []
        stop_at = time.monotonic() + 25

        def place_orders() -> None:
            i = 0
            while len(acked_orders) < 60 and time.monotonic() < stop_at:
                acc = f"CR-{i}"
                i += 1
                try:
                    r = httpx.post(f"http://127.0.0.1:{lab.cfg.ris_port}/orders",
                                   json={**ORDER, "accession": acc}, timeout=5)  # fmt: skip
                except httpx.TransportError:
                    time.sleep(0.1)
                    continue
                if r.status_code == 201:
                    acked_orders.append(acc)
                time.sleep(0.02)

        def store() -> None:
            peer = Peer("127.0.0.1", lab.cfg.dicom_port, "ORTHANC")
            todo = list(files)
            while todo and time.monotonic() < stop_at:
                try:
                    report = store_files(peer, "DICOMKIT", todo[:5], timeout=5)
                except Exception:  # the PACS is down: try again shortly
                    time.sleep(0.2)
                    continue
                done = {r.path for r in report.sent_ok}
                acked_uids.extend(r.sop_instance_uid for r in report.sent_ok)
                todo = [f for f in todo if str(f) not in done]

        workers = [threading.Thread(target=place_orders), threading.Thread(target=store)]
        for w in workers:
            w.start()
        while len(acked_orders) < 15 or len(acked_uids) < 15:
            assert time.monotonic() < stop_at
            time.sleep(0.02)
        state = json.loads(lab.cfg.state_file.read_text())
        for svc in ("pacs", "ris"):
            os.kill(int(state["services"][svc]["pid"]), signal.SIGKILL)
        r = lab.cli("up", "--engine", "embedded", "--json", **env)  # finds them dead, restarts
        assert r.code == 0, r.err
        for w in workers:
            w.join(60)
        assert len(acked_orders) == 60 and len(acked_uids) == 80

        orders = httpx.get(f"http://127.0.0.1:{lab.cfg.ris_port}/orders", timeout=10).json()
        assert set(acked_orders) <= {o["order"]["accession"] for o in orders}
        r = lab.cli("worklist", "find", "--patient-name", ORDER["patient_name"], "--json", **env)
        assert set(acked_orders) <= {m["accession"] for m in r.json()["matches"]}
        found = httpx.post(
            f"http://127.0.0.1:{lab.cfg.http_port}/tools/find",
            json={"Level": "Instance", "Query": {}, "Expand": True},
            timeout=10,
        ).json()
        assert {i["MainDicomTags"]["SOPInstanceUID"] for i in found} == set(acked_uids)
    finally:
        stop_lab(lab)


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "empty",
        "huge",
        "binary",
        "directory",
    ],
)
def test_damaged_progress_file_is_named_and_recoverable(tmp_path: Path, damage: str) -> None:
    from dicomkit.tutor.progress import Progress

    lab = Lab("none", tmp_path, make_config(tmp_path, "native"))
    good = Progress.load(tmp_path)
    good.start(1)
    good.complete(1)
    path = Progress.file_for(tmp_path)
    text = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(text[: len(text) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "binary":
        path.write_bytes(os.urandom(512))
    elif damage == "huge":
        path.write_bytes(b"{" * (5 * 1024 * 1024))
    else:
        path.unlink()
        path.mkdir()
    r = lab.cli("lessons")
    assert r.code == 1, r.out + r.err
    assert "Traceback" not in r.err
    assert "progress file" in r.err and "dicomkit reset --all" in r.err
    r = lab.cli("reset", "--all")
    assert r.code == 0, r.err
    r = lab.cli("lessons", "--json")
    assert r.code == 0 and r.json()["current"] == 1
