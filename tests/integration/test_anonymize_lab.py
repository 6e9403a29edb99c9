"""`dicomkit anonymize --accession` against the running lab on each engine: the study comes
back over C-GET, is de-identified, and with --send goes back into the PACS as a new study."""

from __future__ import annotations

from pathlib import Path

import pydicom

from tests.conftest import Lab
from tests.integration.test_workflow import order


def test_anonymize_study_by_accession_and_send(lab: Lab, tmp_path: Path) -> None:
    acc = f"AN-{lab.engine[:3].upper()}-1"
    placed = order(lab, acc, name="DOE^JANE")
    img = tmp_path / "img.dcm"
    assert lab.cli("make-image", "--accession", acc, "--out", str(img), "--json").code == 0
    assert lab.cli("store", str(img), "--json").code == 0
    out = tmp_path / "anon"
    r = lab.cli("anonymize", "--accession", acc, "--out", str(out), "--send", "--json")
    assert r.code == 0, r.out + r.err
    report = r.json()
    assert report["sent"] == 1 and len(report["files"]) == 1
    new_study = report["studies"][placed["study_instance_uid"]]
    assert new_study and new_study != placed["study_instance_uid"]
    copy = pydicom.dcmread(out / "IM00001.dcm")
    assert copy.PatientIdentityRemoved == "YES" and copy.PatientName != "DOE^JANE"
    assert copy.StudyInstanceUID == new_study
    assert "PatientName" in report["replaced"]
    # The PACS now holds both: the original (by accession) and the copy (by its new UID).
    r = lab.cli("studies", "--json")
    uids = {s["study_instance_uid"] for s in r.json()["studies"]}
    assert {placed["study_instance_uid"], new_study} <= uids


def test_anonymize_unknown_accession_is_exit_2(lab: Lab, tmp_path: Path) -> None:
    r = lab.cli("anonymize", "--accession", "NO-SUCH-ACC", "--out", str(tmp_path), "--json")
    assert r.code == 2, r.out + r.err
    assert "no study with accession" in r.json()["message"]
