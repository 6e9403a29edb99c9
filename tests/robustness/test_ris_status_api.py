"""`POST /orders/{accession}/status`, what the MPPS SCP calls, against a real RIS process:
each refusal is a clear 4xx and leaves the order and its worklist item as they were."""

from __future__ import annotations

import httpx

from tests.robustness.conftest import ORDER, Ris


def _status(ris: Ris, accession: str, body: object) -> httpx.Response:
    return httpx.post(f"{ris.url}/orders/{accession}/status", json=body, timeout=10)


def test_status_api(ris: Ris) -> None:
    placed = ris.post({**ORDER, "accession": "ST-1"}).json()
    items = ris.wl_files()
    assert _status(ris, "ST-NONE", {"status": "IN PROGRESS"}).status_code == 404
    for bad in ({"status": "PAUSED"}, {"status": "COMPLETED", "extra": 1}, {}, []):
        r = _status(ris, "ST-1", bad)
        assert r.status_code == 422 and r.json()["error"] == "invalid status report", r.text
    r = _status(ris, "ST-1", {"status": "IN PROGRESS", "mpps_sop_instance_uid": "1.2.3",
                              "study_instance_uid": placed["study_instance_uid"]})  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "IN PROGRESS", r.text
    r = _status(ris, "ST-1", {"status": "COMPLETED", "mpps_sop_instance_uid": "9.9.9"})
    assert r.status_code == 409 and "another MPPS" in r.json()["error"] and r.json()["hint"]
    r = _status(ris, "ST-1", {"status": "COMPLETED", "study_instance_uid": "1.2.999"})
    assert r.status_code == 409, r.text
    assert ris.wl_files() == items  # refused: the item stays
    got = httpx.get(f"{ris.url}/orders/ST-1", timeout=10).json()
    assert (got["status"], got["mpps_sop_instance_uid"]) == ("IN PROGRESS", "1.2.3")
    r = _status(ris, "ST-1", {"status": "DISCONTINUED", "mpps_sop_instance_uid": "1.2.3"})
    assert r.status_code == 200 and r.json()["status"] == "DISCONTINUED"
    assert ris.wl_files() == items - {ris.worklist_dir / f"{placed['worklist_item_id']}.wl"}
    ris.assert_contained()
