"""The whole path through the real CLI, on every engine: order -> MWL -> image -> store -> find."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.conftest import Lab, testdata


def order(lab: Lab, accession: str, name: str = "DOE^JANE", **extra: str) -> dict:
    body = {"patient_id": f"P-{accession}", "patient_name": name, "accession": accession,
            "modality": "CR", "study_desc": "XR CHEST", **extra}  # fmt: skip
    r = lab.cli("order", "create", "--from-json", "-", "--json", input=json.dumps(body))
    assert r.code == 0, r.out + r.err
    return r.json()


def test_echo_pacs_and_worklist(lab: Lab) -> None:
    for args in (["echo"], ["echo", "--mwl"]):
        r = lab.cli(*args, "--json")
        assert r.code == 0, r.err
        assert r.json()["status"] == 0 and r.json()["ok"] is True
    r = lab.cli("echo")
    assert "echoscu -aet DICOMKIT -aec ORTHANC" in r.out


def test_status_names_engine_and_health(lab: Lab) -> None:
    r = lab.cli("status", "--json")
    assert r.code == 0, r.out + r.err
    d = r.json()
    assert d["engine"] == lab.engine and d["healthy"] is True
    # Beside Orthanc, which has none, the MPPS SCP is a lab process (container) of its own.
    mpps = {"mpps"} if lab.engine != "embedded" else set()
    assert {s["name"] for s in d["services"]} == {"pacs", "ris"} | mpps


def test_up_twice_is_harmless(lab: Lab) -> None:
    r = lab.cli("up", "--engine", lab.engine, "--json")
    assert r.code == 0, r.err
    assert r.json()["already_running"] is True


def test_full_workflow(lab: Lab, tmp_path: Path) -> None:
    acc = f"WF-{lab.engine[:3].upper()}-1"
    placed = order(lab, acc)
    # The modality's view: MWL C-FIND by accession, then by wildcard name + today's date.
    r = lab.cli("worklist", "find", "--accession", acc, "--json")
    assert r.code == 0, r.err
    matches = r.json()["matches"]
    assert len(matches) == 1
    m = matches[0]
    assert m["study_instance_uid"] == placed["study_instance_uid"]
    assert (m["patient_name"], m["modality"], m["station_aet"]) == ("DOE^JANE", "CR", "DICOMKIT")
    r = lab.cli("worklist", "find", "--patient-name", "DOE*", "--date", "today", "--json")
    assert acc in [x["accession"] for x in r.json()["matches"]]
    # Acquire: the image copies the worklist's identifiers.
    img = tmp_path / "img.dcm"
    r = lab.cli("make-image", "--accession", acc, "--out", str(img), "--json")
    assert r.code == 0, r.err
    ds = pydicom.dcmread(img)
    assert ds.AccessionNumber == acc
    assert ds.StudyInstanceUID == placed["study_instance_uid"]
    assert ds.PatientID == f"P-{acc}"
    assert ds.RequestAttributesSequence[0].RequestedProcedureID == placed["requested_procedure_id"]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    # Send and find it.
    r = lab.cli("store", str(img), "--json")
    assert r.code == 0, r.out + r.err
    assert r.json()["sent"] == 1 and r.json()["not_stored"] == []
    r = lab.cli("studies", "--accession", acc, "--json")
    assert r.code == 0, r.err
    studies = r.json()["studies"]
    assert [s["study_instance_uid"] for s in studies] == [placed["study_instance_uid"]]
    assert studies[0]["instances"] == "1" and "CR" in studies[0]["modalities"]
    # The same study over the PACS's REST API (Orthanc's, or the embedded server's subset).
    found = httpx.post(
        f"http://127.0.0.1:{lab.cfg.http_port}/tools/find",
        json={"Level": "Study", "Query": {"AccessionNumber": acc}},
        timeout=10,
    ).json()
    assert len(found) == 1


def test_cancel_removes_from_worklist(lab: Lab) -> None:
    acc = "WF-CANCEL"
    order(lab, acc)
    assert len(lab.cli("worklist", "find", "--accession", acc, "--json").json()["matches"]) == 1
    r = lab.cli("order", "cancel", acc, "--json")
    assert r.code == 0
    assert lab.cli("worklist", "find", "--accession", acc, "--json").json()["matches"] == []


@pytest.mark.parametrize("name", ["Müller^Zoë", "山田^太郎"])
def test_non_ascii_names_round_trip_through_mwl(lab: Lab, name: str) -> None:
    acc = f"NA-{abs(hash(name)) % 10**6}"
    order(lab, acc, name=name)
    r = lab.cli("worklist", "find", "--accession", acc, "--json")
    assert r.code == 0, r.err
    assert [m["patient_name"] for m in r.json()["matches"]] == [name]
    # Matching on the non-ASCII name itself works too.
    r = lab.cli("worklist", "find", "--patient-name", name, "--json")
    assert acc in [m["accession"] for m in r.json()["matches"]]


def test_truncated_wl_beside_good_ones_is_skipped(lab: Lab) -> None:
    acc = "WF-TRUNC-OK"
    placed = order(lab, acc)
    good = lab.cfg.worklist_dir / f"{placed['worklist_item_id']}.wl"
    bad = lab.cfg.worklist_dir / ("f" * 32 + ".wl")
    bad.write_bytes(good.read_bytes()[:200])
    try:
        r = lab.cli("worklist", "find", "--accession", acc, "--json")
        assert r.code == 0, r.err
        assert len(r.json()["matches"]) == 1
    finally:
        bad.unlink()


def test_order_errors_are_clear(lab: Lab) -> None:
    r = lab.cli("order", "create", "--patient-id", "P1", "--patient-name", "A^B",
                "--accession", "A" * 17, "--modality", "CR")  # fmt: skip
    assert r.code == 2
    assert "accession" in r.err and "16" in r.err
    order(lab, "WF-DUP")
    r = lab.cli("order", "create", "--patient-id", "P1", "--patient-name", "A^B",
                "--accession", "WF-DUP", "--modality", "CR", "--json")  # fmt: skip
    assert r.code == 2 and r.json()["details"]["status"] == 409


def test_wrong_called_ae_is_rejected_with_hint(lab: Lab) -> None:
    r = lab.cli("echo", "--to", f"127.0.0.1:{lab.cfg.dicom_port}:WRONGAE")
    assert r.code == 3
    assert "rejected" in r.err and "called AE" in r.err


def test_unknown_calling_ae_refused_for_mwl_but_echo_works(lab: Lab) -> None:
    assert lab.cli("echo", "--aet", "ROGUE").code == 0
    r = lab.cli("worklist", "find", "--aet", "ROGUE", "--json")
    assert r.code != 0
    assert "AllowFindWorklist" in r.json()["hint"]


def test_make_image_for_unknown_accession(lab: Lab) -> None:
    r = lab.cli("make-image", "--accession", "NOPE-404")
    assert r.code == 1 and "no worklist item" in r.err


def test_store_pydicom_files_including_compressed(lab: Lab) -> None:
    names = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm",
             "SC_rgb_jpeg_gdcm.dcm", "JPEG-lossy.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_rle.dcm", "image_dfl.dcm"]  # fmt: skip
    files = [str(testdata(n)) for n in names]
    r = lab.cli("store", *files, "--json")
    d = r.json()
    assert r.code == 0, json.dumps(d["files"], indent=1)
    assert d["sent"] == len(names)


def test_store_reports_exactly_the_files_not_stored(lab: Lab, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "notes.txt").write_text("not dicom")
    (folder / "a.dcm").write_bytes(testdata("CT_small.dcm").read_bytes())
    (folder / "b.dcm").write_bytes(testdata("CT_small.dcm").read_bytes()[:100])
    r = lab.cli("store", str(folder), "--json")
    assert r.code == 1
    d = r.json()
    assert d["sent"] == 1
    assert sorted(Path(p).name for p in d["not_stored"]) == ["b.dcm", "notes.txt"]
    r = lab.cli("store", str(tmp_path / "missing.dcm"))
    assert r.code == 2 and "no such file" in r.err


def test_pacs_down_is_a_clear_error(lab: Lab) -> None:
    r = lab.cli("echo", "--to", "127.0.0.1:9:ORTHANC", "--timeout", "2")
    assert r.code == 3
    assert "nothing answers on 127.0.0.1:9" in r.err
    r = lab.cli("store", str(testdata("CT_small.dcm")), "--to", "127.0.0.1:9:ORTHANC", "--json")
    assert r.code == 3 and "dicomkit up" in r.json()["hint"]


def test_http_port_is_not_dicom(lab: Lab) -> None:
    r = lab.cli("echo", "--to", f"127.0.0.1:{lab.cfg.ris_port}:ORTHANC", "--timeout", "3")
    assert r.code == 3
