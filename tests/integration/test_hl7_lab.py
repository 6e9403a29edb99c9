"""HL7 into the running lab on each engine, through the real CLI: `dicomkit hl7 send` places
the order, a modality's MWL C-FIND (`dicomkit worklist find`) sees it, ORC-1 CA takes it away.
(Docker: tests/integration/test_docker.py, test_hl7_order_reaches_the_worklist.)"""

from __future__ import annotations

from pathlib import Path

from tests import hl7util as h
from tests.conftest import Lab


def test_status_names_the_hl7_endpoint(lab: Lab) -> None:
    r = lab.cli("status", "--json")
    assert r.code == 0, r.out + r.err
    assert r.json()["hl7"] == f"127.0.0.1:{lab.cfg.hl7_port}"
    ris = next(s for s in r.json()["services"] if s["name"] == "ris")
    assert f"{lab.cfg.hl7_port}/hl7" in ris["ports"]


def test_hl7_order_is_in_the_worklist_and_cancel_removes_it(lab: Lab, tmp_path: Path) -> None:
    acc = f"HL7-{lab.engine[:3].upper()}-1"
    today = __import__("datetime").date.today().strftime("%Y%m%d")
    orm = tmp_path / "orm.hl7"
    # As a person types it: one segment per line (LF), sent with the CLI.
    orm.write_bytes(h.orm(accession=acc, modality="CR", when=today + "0930").replace(b"\r", b"\n"))
    r = lab.cli("hl7", "send", str(orm), "--json")
    assert r.code == 0, r.out + r.err
    ack = r.json()
    assert (ack["code"], ack["control_id"], ack["message_type"]) == ("AA", "MSG0001", "ORM^O01")
    r = lab.cli("worklist", "find", "--accession", acc, "--json")
    assert r.code == 0, r.out + r.err
    (m,) = r.json()["matches"]
    assert (m["patient_name"], m["patient_id"], m["modality"]) == ("DOE^JANE", "P-HL7", "CR")
    # The same message again: AE naming OBR-18, exit 2, and a human-readable line without --json.
    r = lab.cli("hl7", "send", str(orm))
    assert r.code == 2, r.out + r.err
    assert "AE" in r.out and "OBR-18" in r.out and "already has an order" in r.out
    cancel = tmp_path / "cancel.hl7"
    cancel.write_bytes(h.orm(accession=acc, control="CA"))
    r = lab.cli("hl7", "send", "-", "--json", input=cancel.read_text())
    assert r.code == 0 and r.json()["code"] == "AA", r.out + r.err
    r = lab.cli("worklist", "find", "--accession", acc, "--json")
    assert r.code == 0 and r.json()["matches"] == [], r.out + r.err


def test_adt_a08_renames_the_patient_in_the_worklist(lab: Lab, tmp_path: Path) -> None:
    acc = f"A08-{lab.engine[:3].upper()}-1"
    msgs = tmp_path / "two.hl7"
    # Two messages in one file go on one connection, in order.
    msgs.write_bytes(
        h.orm(accession=acc, patient_id=f"P-{acc}", modality="CR")
        + h.adt_a08(f"P-{acc}", name="DOE^JANET")
    )
    r = lab.cli("hl7", "send", str(msgs), "--json")
    assert r.code == 0, r.out + r.err
    assert [a["code"] for a in r.json()] == ["AA", "AA"]
    r = lab.cli("worklist", "find", "--accession", acc, "--json")
    assert [m["patient_name"] for m in r.json()["matches"]] == ["DOE^JANET"]


def test_hl7_send_to_nothing_is_exit_3_with_hint(lab: Lab, tmp_path: Path) -> None:
    from tests.conftest import free_port

    orm = tmp_path / "orm.hl7"
    orm.write_bytes(h.orm())
    r = lab.cli("hl7", "send", str(orm), "--to", f"127.0.0.1:{free_port()}", "--json")
    assert r.code == 3, r.out + r.err
    assert r.json()["error"] == "ConnectionFailed"
