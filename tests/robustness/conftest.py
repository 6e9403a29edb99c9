"""Real servers for the robustness suite: the RIS (uvicorn, ``python -m dicomkit.ris``) and
the embedded PACS (``python -m dicomkit.pacs``), each in a sandbox folder whose whole tree is
checked afterwards: nothing may be written outside the folders the server owns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.conftest import free_port, wait_port

ORDER: dict[str, Any] = {
    "patient_id": "P-ROBUST",
    "patient_name": "TEST^SYNTHETIC",
    "accession": "R-1",
    "modality": "CR",
    "study_desc": "XR CHEST",
}


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if not p.is_dir()}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ---- the RIS ------------------------------------------------------------------------------


@dataclass
class Ris:
    """A RIS in ``sandbox/deep/``: ``../`` and ``../../`` of its folders are still ours to check."""

    sandbox: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def root(self) -> Path:
        return self.sandbox / "deep"

    @property
    def worklist_dir(self) -> Path:
        return self.root / "worklists"

    @property
    def db(self) -> Path:
        return self.root / "ris" / "orders.sqlite3"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body: Any) -> httpx.Response:
        # ensure_ascii: lone surrogates travel as JSON escapes, as a hostile client sends them.
        data = json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        return httpx.post(f"{self.url}/orders", content=data, headers=headers, timeout=10)

    def wl_files(self) -> set[Path]:
        return set(self.worklist_dir.glob("*.wl"))

    def assert_contained(self) -> None:
        """Only the database and ``.wl`` items exist in the sandbox; every item parses and
        belongs to exactly one open order."""
        allowed_db = {self.db, Path(f"{self.db}-wal"), Path(f"{self.db}-shm")}
        for path in files_under(self.sandbox):
            if path in allowed_db or path == self.log:
                continue
            assert path.parent == self.worklist_dir, f"file outside the worklist folder: {path}"
            assert path.suffix == ".wl" and len(path.stem) == 32, f"unexpected file {path}"
        items = {p.stem for p in self.wl_files()}
        for p in self.wl_files():
            ds = pydicom.dcmread(p)
            assert ds.ScheduledProcedureStepSequence[0].Modality
        orders = httpx.get(f"{self.url}/orders", timeout=30).json()
        # A finished procedure step (MPPS COMPLETED/DISCONTINUED) has left the worklist.
        open_orders = [o for o in orders if o.get("status") not in ("COMPLETED", "DISCONTINUED")]
        assert {o["worklist_item_id"] for o in open_orders} == items


def start_ris(sandbox: Path, *args: str) -> Ris:
    root = sandbox / "deep"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = sandbox / "ris.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomkit.ris", "--port", str(port),
             "--db", str(root / "ris" / "orders.sqlite3"),
             "--worklist-dir", str(root / "worklists"), *args],
            stdout=fh, stderr=subprocess.STDOUT, cwd=root,
        )  # fmt: skip
    ris = Ris(sandbox, port, proc, log)
    wait_port(port, proc, log)
    return ris


@pytest.fixture(scope="module")
def ris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ris]:
    server = start_ris(tmp_path_factory.mktemp("ris-sandbox"))
    try:
        yield server
    finally:
        stop(server.proc)


# ---- the embedded PACS --------------------------------------------------------------------

PACS_AET = "ORTHANC"


@dataclass
class Pacs:
    home: Path
    dicom_port: int
    mwl_port: int
    http_port: int
    proc: subprocess.Popen[bytes]
    log: Path
    conf: dict[str, Any]

    @property
    def storage_dir(self) -> Path:
        return Path(self.conf["storage_dir"])

    @property
    def worklist_dir(self) -> Path:
        return Path(self.conf["worklist_dir"])

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"http://127.0.0.1:{self.http_port}/statistics", timeout=10).json())

    def peer(self) -> str:
        return f"127.0.0.1:{self.dicom_port}:{PACS_AET}"


def start_pacs(home: Path, **over: Any) -> Pacs:
    home.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = {
        "aet": PACS_AET,
        "host": "127.0.0.1",
        "dicom_port": free_port(),
        "mwl_port": free_port(),
        "http_port": free_port(),
        "storage_dir": str(home / "storage"),
        "worklist_dir": str(home / "worklists"),
        "modalities": {"dicomkit": {"AET": "DICOMKIT", "Host": "127.0.0.1", "Port": 11112}},
        "max_associations": 8,
        "network_timeout": 3,
        "max_pdu": 65536,
    }
    conf.update(over)
    Path(conf["worklist_dir"]).mkdir(parents=True, exist_ok=True)
    path = home / "server.json"
    path.write_text(json.dumps(conf))
    log = home / "pacs.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomkit.pacs", "--config", str(path)],
            stdout=fh, stderr=subprocess.STDOUT, cwd=home,
        )  # fmt: skip
    pacs = Pacs(home, conf["dicom_port"], conf["mwl_port"], conf["http_port"], proc, log, conf)
    for port in (pacs.dicom_port, pacs.mwl_port, pacs.http_port):
        wait_port(port, proc, log)
    return pacs


def cli(
    *args: str, home: Path, timeout: float = 60, wrap: list[str] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The real CLI, in a clean environment (no DICOMKIT_* from the caller); ``wrap`` prefixes
    the command (e.g. setpriv to drop privileges)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DICOMKIT_")}
    full.update(DICOMKIT_HOME=str(home), COLUMNS="200", **env)
    return subprocess.run(
        [*(wrap or []), sys.executable, "-m", "dicomkit", *args],
        env=full, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def make_instances(folder: Path, n: int, *, patient: str = "TEST^STORE") -> list[Path]:
    """``n`` small CT instances (one study, one series), each with its own SOP Instance UID."""
    from pydicom.uid import generate_uid

    from tests.conftest import testdata

    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(testdata("CT_small.dcm"))
    base.PatientName = patient
    base.StudyInstanceUID = generate_uid()
    base.SeriesInstanceUID = generate_uid()
    out = []
    for i in range(n):
        uid = generate_uid()
        base.SOPInstanceUID = uid
        base.file_meta.MediaStorageSOPInstanceUID = uid
        base.InstanceNumber = i + 1
        path = folder / f"img{i:04d}.dcm"
        base.save_as(path, enforce_file_format=True)
        out.append(path)
    return out
