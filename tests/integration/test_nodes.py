"""Two Orthanc nodes on one PostgreSQL index (`dicomkit up --engine native --nodes 2`), with
Debian's packages: what one node stores the other finds (C-FIND, REST, DICOMweb); a node killed
mid-store loses no acknowledged instance and `store --resume` through the other completes the
rest; a PostgreSQL restart under load loses no acknowledged instance and the nodes recover.

The tests share one lab and run in file order: the last one kills node 1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pydicom.uid
import pytest

from dicomkit.engines import postgres, process
from dicomkit.engines.native import find_orthanc, orthanc_plugins
from dicomkit.engines.state import read_state, write_state
from tests.conftest import Lab, start_lab, testdata

pytestmark = [pytest.mark.postgres, pytest.mark.orthanc]


def _plugin_missing() -> str:
    binary = find_orthanc()
    if binary is None:
        return "Orthanc is not installed"
    if postgres.find_bindir() is None:
        return "PostgreSQL's server is not installed (apt install postgresql)"
    if not any(Path(p, "libOrthancPostgreSQLIndex.so").exists() for p in orthanc_plugins(binary)):
        return "Orthanc's PostgreSQL plugin is not installed (apt install orthanc-postgresql)"
    return ""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    missing = _plugin_missing()
    if missing:
        pytest.skip(missing)
    # Not under pytest's tmp folder: it is closed (0700) to the postgres user, which must reach
    # the cluster in the lab's folder when the tests run as root.
    home = Path(tempfile.mkdtemp(prefix="dicomkit-nodes-"))
    home.chmod(0o711)
    try:
        lab = start_lab(home, "native", "--nodes", "2")
        try:
            yield lab
        finally:
            r = lab.cli("down", "--volumes")
            assert r.code == 0, r.err
            assert not postgres.cluster_for(lab.cfg).root.exists(), (
                "down --volumes left the database"
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def nodes(lab: Lab) -> list[tuple[int, str]]:
    """(DICOM port, HTTP URL) of each node, as `status --json` reports them."""
    r = lab.cli("status", "--json")
    out = []
    for node in r.json()["nodes"]:
        out.append((int(node["dicom"].rsplit(":", 1)[1]), node["http"]))
    return out


def make_files(folder: Path, n: int) -> dict[str, Path]:
    """``n`` CT instances of one new study, each with its own SOP Instance UID."""
    folder.mkdir(parents=True)
    ds = pydicom.dcmread(testdata("CT_small.dcm"))
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    out = {}
    for i in range(n):
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        path = folder / f"{i:03d}.dcm"
        ds.save_as(path)
        out[ds.SOPInstanceUID] = path
    return out


def instances_at(http: str, uids: set[str]) -> set[str]:
    """Which of ``uids`` the node's REST API knows (/tools/lookup)."""
    found = set()
    with httpx.Client(base_url=http, timeout=10) as client:
        for uid in uids:
            r = client.post("/tools/lookup", content=uid)
            r.raise_for_status()
            if any(hit["Type"] == "Instance" for hit in r.json()):
                found.add(uid)
    return found


def start_store(lab: Lab, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dicomkit", "store", *args, "--json"],
        env=lab.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def acknowledged(proc: subprocess.Popen[str]) -> set[str]:
    out, _err = proc.communicate(timeout=120)
    report = json.loads(out)
    return {f["sop_instance_uid"] for f in report["files"] if f["ok"]}


def journal_lines(lab: Lab) -> int:
    folder = lab.home / "lab" / "journal"
    return sum(len(p.read_text().splitlines()) for p in folder.glob("store-*.log"))


def test_status_lists_both_nodes_and_postgres_is_not_root(lab: Lab) -> None:
    (dicom1, http1), (dicom2, http2) = nodes(lab)
    assert dicom1 == lab.cfg.dicom_port and http1 == f"http://127.0.0.1:{lab.cfg.http_port}"
    assert dicom2 != dicom1 and http2 != http1
    state = read_state(lab.cfg)
    assert state is not None
    pg = state.services["postgres"]
    assert os.stat(f"/proc/{pg.pid}").st_uid != 0, "PostgreSQL must not run as root"


def test_stored_through_node_1_found_through_node_2(lab: Lab, tmp_path: Path) -> None:
    files = make_files(tmp_path / "one", 1)
    ((uid, path),) = files.items()
    r = lab.cli("store", str(path), "--json")
    assert r.code == 0, r.err
    (_, _), (dicom2, http2) = nodes(lab)
    study = str(pydicom.dcmread(path).StudyInstanceUID)

    # REST
    assert instances_at(http2, {uid}) == {uid}
    # DICOMweb (QIDO-RS, PS3.18 10.6)
    qido = httpx.get(f"{http2}/dicom-web/studies/{study}/instances", timeout=10)
    assert qido.status_code == 200, qido.text
    assert [i["00080018"]["Value"][0] for i in qido.json()] == [uid]
    # C-FIND, Study Root, IMAGE level (PS3.4 C.6.2), with DCMTK's findscu
    findscu = shutil.which("findscu")
    if findscu is None:
        pytest.skip("findscu (DCMTK) is not installed")
    out = subprocess.run(
        [findscu, "-v", "-S", "-aet", "FINDSCU", "-aec", "ORTHANC",
         "-k", "QueryRetrieveLevel=IMAGE", "-k", f"StudyInstanceUID={study}",
         "-k", "SeriesInstanceUID", "-k", "SOPInstanceUID", "127.0.0.1", str(dicom2)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    # An odd-length UID comes back padded to even length with a NUL (PS3.5 6.2), which findscu
    # prints inside the brackets: "[1.2.3\0]" (generate_uid makes some UIDs 63 characters long).
    answer = out.stdout + out.stderr
    assert re.search(rf"\(0008,0018\) UI \[{re.escape(uid)}\x00?\]", answer), answer


def test_postgres_restart_under_load_loses_no_acknowledged_instance(
    lab: Lab, tmp_path: Path
) -> None:
    files = make_files(tmp_path / "restart", 100)
    (_, http1), (dicom2, http2) = nodes(lab)
    paths = sorted(files.values())
    half = tmp_path / "half"
    half.mkdir()
    for p in paths[50:]:
        p.rename(half / p.name)
    # Two senders, one per node.
    before = journal_lines(lab)
    senders = [
        start_store(lab, str(tmp_path / "restart"), "-j", "2"),
        start_store(lab, str(half), "-j", "2", "--to", f"127.0.0.1:{dicom2}:ORTHANC"),
    ]
    process.wait_until(
        lambda: journal_lines(lab) - before >= 15,
        what="the first acknowledged instances",
        timeout=60,
    )
    # A fast shutdown (every session ended) and a start, as the engine does it.
    state = read_state(lab.cfg)
    assert state is not None
    pg = state.services["postgres"]
    cluster = postgres.cluster_for(lab.cfg)
    assert process.stop_pid(pg.pid, pg.cmd_marker, sig=signal.SIGINT)
    user = postgres.prepare(cluster)
    pg.pid = postgres.spawn(cluster, user)
    write_state(lab.cfg, state)
    process.wait_until(lambda: postgres.answers(cluster), what="PostgreSQL", timeout=30)

    acked = acknowledged(senders[0]) | acknowledged(senders[1])
    assert acked, "nothing was acknowledged"
    # The nodes recover: both answer again, and every acknowledged instance is in the index.
    for _, http in nodes(lab):
        process.wait_until(
            lambda http=http: http_system_ok(http), what=f"Orthanc at {http}", timeout=40
        )
    assert instances_at(http1, acked) == acked
    assert instances_at(http2, acked) == acked
    # What was refused during the restart is stored when sent again.
    rest = set(files) - acked
    r = lab.cli("store", str(tmp_path / "restart"), str(half), "--resume", "--json")
    assert r.code == 0, r.out + r.err
    assert instances_at(http2, rest) == rest


def http_system_ok(http: str) -> bool:
    try:
        return httpx.get(f"{http}/system", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_node_killed_mid_store_then_resume_through_the_other(lab: Lab, tmp_path: Path) -> None:
    files = make_files(tmp_path / "kill", 200)
    (_, _), (dicom2, http2) = nodes(lab)
    state = read_state(lab.cfg)
    assert state is not None
    node1 = state.services["pacs"]
    before = journal_lines(lab)
    sender = start_store(lab, str(tmp_path / "kill"), "-j", "2")
    process.wait_until(
        lambda: journal_lines(lab) - before >= 40, what="40 acknowledged instances", timeout=60
    )
    os.kill(node1.pid, signal.SIGKILL)
    acked = acknowledged(sender)
    assert 40 <= len(acked) < len(files), f"{len(acked)} acknowledged: node 1 died too late"
    # Every instance node 1 acknowledged is in the shared index and storage: node 2 has it.
    assert instances_at(http2, acked) == acked
    some = sorted(acked)[0]
    with httpx.Client(base_url=http2, timeout=10) as client:
        orthanc_id = client.post("/tools/lookup", content=some).json()[0]["ID"]
        dicom = client.get(f"/instances/{orthanc_id}/file")
    assert dicom.status_code == 200
    sent = pydicom.dcmread(files[some])
    got = pydicom.dcmread(BytesIO(dicom.content))
    assert (got.SOPInstanceUID, got.PixelData) == (sent.SOPInstanceUID, sent.PixelData)

    # --resume through node 2: the journal is the archive's, so only the rest is sent.
    r = lab.cli(
        "store", str(tmp_path / "kill"), "--resume", "--to", f"127.0.0.1:{dicom2}:ORTHANC",
        "--json",
    )  # fmt: skip
    assert r.code == 0, r.out + r.err
    report = r.json()
    assert report["already_stored"] == len(acked)
    assert report["sent"] == len(files) - len(acked)
    assert instances_at(http2, set(files)) == set(files)
