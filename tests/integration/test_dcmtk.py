"""DCMTK as the independent peer: our files and servers must satisfy *their* tools, and ours theirs."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.conftest import Lab, free_port, need, testdata, wait_port


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    exe = need("storescp")
    out = tmp_path / "received"
    out.mkdir()
    port = free_port()
    proc = subprocess.Popen([exe, "-aet", "STORESCP", "-od", str(out), "+xa", str(port)])
    try:
        wait_port(port, proc)
        yield port, out
    finally:
        proc.terminate()
        proc.wait(10)


def place(lab: Lab, accession: str, **extra: str) -> dict:
    body = {"patient_id": "P123", "patient_name": "DOE^JANE", "accession": accession,
            "modality": "CR", "study_desc": "XR CHEST", **extra}  # fmt: skip
    r = lab.cli("order", "create", "--from-json", "-", "--json", input=json.dumps(body))
    assert r.code == 0, r.err
    return r.json()


def test_findscu_finds_an_order_from_the_ris(native_lab: Lab) -> None:
    exe = need("findscu")
    placed = place(native_lab, "DCM-FIND-1")
    proc = subprocess.run(
        [exe, "-W", "-aet", "FINDSCU", "-aec", "ORTHANC",
         "-k", "AccessionNumber=DCM-FIND-1", "-k", "PatientName", "-k", "StudyInstanceUID",
         "-k", "ScheduledProcedureStepSequence[0].Modality",
         "-k", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
         "127.0.0.1", str(native_lab.endpoints.mwl_port)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert placed["study_instance_uid"] in out
    assert "DOE^JANE" in out and "DICOMKIT" in out


def test_storescu_sends_our_image_and_orthanc_accepts(native_lab: Lab, tmp_path: Path) -> None:
    exe = need("storescu")
    place(native_lab, "DCM-STORE-1")
    img = tmp_path / "img.dcm"
    assert native_lab.cli("make-image", "--accession", "DCM-STORE-1", "--out", str(img)).code == 0
    dciodvfy = shutil.which("dciodvfy")  # not in Debian's dcmtk; dicom3tools when present
    if dciodvfy:
        subprocess.run([dciodvfy, str(img)], check=False)
    proc = subprocess.run(
        [exe, "-aet", "STORESCU", "-aec", "ORTHANC", "127.0.0.1", str(native_lab.cfg.dicom_port), str(img)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = native_lab.cli("studies", "--accession", "DCM-STORE-1", "--json")
    assert len(r.json()["studies"]) == 1


def test_dcmdump_reads_our_worklist_item_and_image(native_lab: Lab, tmp_path: Path) -> None:
    exe = need("dcmdump")
    placed = place(native_lab, "DCM-DUMP-1")
    wl = native_lab.cfg.worklist_dir / f"{placed['worklist_item_id']}.wl"
    proc = subprocess.run([exe, str(wl)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "DCM-DUMP-1" in proc.stdout, proc.stderr
    assert "(0040,0100)" in proc.stdout  # ScheduledProcedureStepSequence


def test_dicomkit_store_delivers_to_dcmtk_storescp(
    native_lab: Lab, storescp: tuple[int, Path]
) -> None:
    port, out = storescp
    files = [
        testdata(n) for n in ("CT_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_rle.dcm")
    ]
    r = native_lab.cli("store", *map(str, files), "--to", f"127.0.0.1:{port}:STORESCP", "--json")
    assert r.code == 0, r.out + r.err
    assert r.json()["sent"] == 4
    received = sorted(out.iterdir())
    assert len(received) == 4
    got = {pydicom.dcmread(p).SOPInstanceUID for p in received}
    want = {pydicom.dcmread(p).SOPInstanceUID for p in files}
    assert got == want
    # Sent as they were: the JPEG 2000 file is still JPEG 2000 on the other side.
    ts = {str(pydicom.dcmread(p).file_meta.TransferSyntaxUID) for p in received}
    assert "1.2.840.10008.1.2.4.90" in ts or "1.2.840.10008.1.2.4.91" in ts


def test_wlmscpfs_serves_our_wl_files_to_dicomkit(native_lab: Lab, tmp_path: Path) -> None:
    exe = need("wlmscpfs")
    placed = place(native_lab, "DCM-WLM-1", patient_name="Müller^Zoë")
    # wlmscpfs wants DIR/<CALLED AE>/*.wl plus a lockfile (DCMTK's layout).
    root = tmp_path / "wlm"
    ae_dir = root / "WLMSCP"
    ae_dir.mkdir(parents=True)
    (ae_dir / "lockfile").touch()
    for f in native_lab.cfg.worklist_dir.glob("*.wl"):
        shutil.copy(f, ae_dir / f.name)
    port = free_port()
    proc = subprocess.Popen([exe, "-dfp", str(root), str(port)])
    try:
        wait_port(port, proc)
        r = native_lab.cli("worklist", "find", "--accession", "DCM-WLM-1",
                           "--to", f"127.0.0.1:{port}:WLMSCP", "--json")  # fmt: skip
        assert r.code == 0, r.err
        m = r.json()["matches"]
        assert len(m) == 1
        assert m[0]["study_instance_uid"] == placed["study_instance_uid"]
        assert m[0]["patient_name"] == "Müller^Zoë"
        assert m[0]["station_aet"] == "DICOMKIT"
    finally:
        proc.terminate()
        proc.wait(10)
