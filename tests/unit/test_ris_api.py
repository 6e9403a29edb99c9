"""The RIS API in-process (real app, real SQLite, real files): statuses, messages, side effects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient

from dicomkit.ris.app import create_app

ORDER = {
    "patient_id": "P123",
    "patient_name": "DOE^JANE",
    "accession": "ACC-1001",
    "modality": "CR",
    "study_desc": "XR CHEST",
}


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "ris" / "orders.sqlite3", tmp_path / "worklists"


@pytest.fixture
def client(folders: tuple[Path, Path]) -> Iterator[TestClient]:
    db, wl = folders
    with TestClient(create_app(db, wl)) as c:
        yield c


def wl_files(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


def test_create_writes_a_complete_worklist_item(
    client: TestClient, folders: tuple[Path, Path]
) -> None:
    r = client.post("/orders", json=ORDER)
    assert r.status_code == 201, r.text
    body = r.json()
    files = wl_files(folders[1])
    assert [f.name for f in files] == [f"{body['worklist_item_id']}.wl"]
    ds = pydicom.dcmread(files[0])
    # PS3.4 Table K.6-1 Type 1 return keys
    assert ds.AccessionNumber == "ACC-1001"
    assert ds.StudyInstanceUID == body["study_instance_uid"]
    assert ds.RequestedProcedureID
    assert ds.PatientName == "DOE^JANE" and ds.PatientID == "P123"
    sps = ds.ScheduledProcedureStepSequence[0]
    assert sps.Modality == "CR"
    assert sps.ScheduledStationAETitle == "DICOMKIT"
    assert sps.ScheduledProcedureStepStartDate and sps.ScheduledProcedureStepStartTime
    assert sps.ScheduledProcedureStepID
    assert sps.ScheduledProcedureStepDescription == "XR CHEST"
    assert "SpecificCharacterSet" not in ds  # plain ASCII: default repertoire


def test_non_ascii_names_get_utf8_charset(client: TestClient, folders: tuple[Path, Path]) -> None:
    r = client.post("/orders", json={**ORDER, "patient_name": "山田^太郎", "accession": "A2"})
    assert r.status_code == 201
    ds = pydicom.dcmread(wl_files(folders[1])[0])
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "山田^太郎"


def test_422_names_every_bad_field(client: TestClient, folders: tuple[Path, Path]) -> None:
    bad = {**ORDER, "accession": "A" * 17, "study_desc": "D" * 65, "modality": "XRAY"}
    r = client.post("/orders", json=bad)
    assert r.status_code == 422
    fields = r.json()["fields"]
    assert set(fields) == {"accession", "study_desc", "modality"}
    assert "16" in fields["accession"]
    assert not folders[1].exists() or wl_files(folders[1]) == []


def test_missing_fields_and_wrong_types(client: TestClient) -> None:
    r = client.post("/orders", json={"patient_id": "P1"})
    assert r.status_code == 422
    assert r.json()["fields"]["accession"] == "is required"
    assert (
        client.post(
            "/orders", content=b"not json", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    assert client.post("/orders", json=[1, 2]).status_code == 422


def test_duplicate_accession_is_409_and_keeps_the_first(
    client: TestClient, folders: tuple[Path, Path]
) -> None:
    assert client.post("/orders", json=ORDER).status_code == 201
    r = client.post("/orders", json={**ORDER, "patient_name": "OTHER^ONE"})
    assert r.status_code == 409
    assert "ACC-1001" in r.json()["error"]
    assert len(wl_files(folders[1])) == 1
    assert client.get("/orders/ACC-1001").json()["order"]["patient_name"] == "DOE^JANE"


def test_oversized_body_is_413(client: TestClient, folders: tuple[Path, Path]) -> None:
    r = client.post(
        "/orders",
        content=b"{" + b" " * (10 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert not folders[1].exists() or wl_files(folders[1]) == []


@pytest.mark.parametrize("accession", ["../../x", "/etc/x", "..", "a/b"])
def test_path_like_accessions_never_become_paths(
    client: TestClient, folders: tuple[Path, Path], accession: str
) -> None:
    r = client.post("/orders", json={**ORDER, "accession": accession})
    assert r.status_code == 201
    files = wl_files(folders[1])
    assert len(files) == 1 and files[0].parent == folders[1]
    assert files[0].name == f"{r.json()['worklist_item_id']}.wl"
    tmp_root = folders[1].parent
    assert sorted(p.name for p in tmp_root.iterdir()) == ["ris", "worklists"]
    # ... and the order can be fetched and cancelled by that accession.
    from dicomkit.ris.client import _quote

    assert client.get(f"/orders/{_quote(accession)}").json()["order"]["accession"] == accession
    assert client.delete(f"/orders/{_quote(accession)}").status_code == 200
    assert wl_files(folders[1]) == []


def test_cancel_removes_the_item_and_404s(client: TestClient, folders: tuple[Path, Path]) -> None:
    client.post("/orders", json=ORDER)
    assert client.delete("/orders/ACC-1001").status_code == 200
    assert wl_files(folders[1]) == []
    assert client.get("/orders/ACC-1001").status_code == 404
    assert client.delete("/orders/ACC-1001").status_code == 404


def test_list_health_and_openapi(client: TestClient) -> None:
    client.post("/orders", json=ORDER)
    client.post("/orders", json={**ORDER, "accession": "ACC-1002"})
    assert [o["order"]["accession"] for o in client.get("/orders").json()] == [
        "ACC-1001",
        "ACC-1002",
    ]
    assert client.get("/healthz").json()["orders"] == 2
    assert "/orders" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_restart_recovers_missing_items_and_drops_temp_files(folders: tuple[Path, Path]) -> None:
    db, wl = folders
    with TestClient(create_app(db, wl)) as c:
        item = c.post("/orders", json=ORDER).json()["worklist_item_id"]
    (wl / f"{item}.wl").unlink()  # lost in a crash
    (wl / ".half.tmp").write_bytes(b"partial")
    with TestClient(create_app(db, wl)) as c:
        assert c.get("/orders/ACC-1001").status_code == 200
    assert sorted(p.name for p in wl.iterdir()) == [f"{item}.wl"]
