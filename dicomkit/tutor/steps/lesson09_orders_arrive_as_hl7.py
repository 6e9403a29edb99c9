"""Lesson 9, orders arrive as HL7: the tutor writes an ORM^O01 (HL7 v2.3.1) the HIS would send;
the learner sends it over MLLP (`dicomkit hl7 send`); the tutor watches the RIS for the order
(IHE RAD TF-2 RAD-2), then shows its fields and an order the RIS refuses (ACK AE + ERR)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from dicomkit import ui
from dicomkit.errors import RisError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.watch_lab import workdir

PATIENT = "TUTOR^GRACE"  # synthetic: never a real patient in a lab
PROCEDURE = ("XR-CHEST", "XR CHEST PA")  # OBR-4: code^text
MODALITY = "CR"

# The fields the RIS maps (IHE RAD TF-2x Appendix B, as dicomkit/ris/hl7map.py reads them).
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("MSH-9", "message type", "ORM^O01: an order message, event O01"),
    ("MSH-10", "message control ID", "echoed in the ACK's MSA-2"),
    ("MSH-12", "version", "2.3.1 (ORM); OMI^O23 is the v2.5.1 message"),
    ("PID-3", "patient ID", "-> PatientID (0010,0020)"),
    ("PID-5", "patient name", "-> PatientName (0010,0010): FAMILY^GIVEN in both"),
    ("PID-7", "birth date", "-> PatientBirthDate (0010,0030)"),
    ("PID-8", "sex", "-> PatientSex (0010,0040)"),
    ("ORC-1", "order control", "NW new order, CA cancel"),
    ("OBR-4", "universal service ID", "-> RequestedProcedureDescription (code^text)"),
    ("OBR-18", "placer field 1", "-> AccessionNumber (0008,0050)"),
    ("OBR-24", "diagnostic serv sect ID", "-> Modality (0008,0060)"),
)


def orm(accession: str, control_id: str, obr18: str | None = None) -> str:
    """An ORM^O01 (v2.3.1), one segment per line, as the README's example writes it."""
    stamp = time.strftime("%Y%m%d%H%M%S")
    acc = accession if obr18 is None else obr18
    obr = ["OBR", "1", accession, "", "^".join(PROCEDURE)] + [""] * 13 + [acc] + [""] * 5
    obr.append(MODALITY)  # OBR-24
    return "\n".join([
        f"MSH|^~\\&|HIS|HOSP|DICOMKIT_RIS|RAD|{stamp}||ORM^O01|{control_id}|P|2.3.1",
        f"PID|1||{accession}-PID||{PATIENT}||19700101|F",
        f"ORC|NW|{accession}",
        "|".join(obr),
    ]) + "\n"  # fmt: skip


def _prepare(ctx: LabContext) -> Values:
    # One accession per try, saved before use, so a rerun never collides with an old order.
    accession = ctx.progress.outcomes(9).get("task_accession")
    if not accession or ctx.progress.outcomes(9).get("hl7_accession") == accession:
        accession = ctx.progress.next_accession()
        ctx.record(task_accession=accession)
    path = workdir(ctx, "send-orm") / "orm.hl7"
    path.write_text(orm(str(accession), f"MSG-{accession}"), encoding="utf-8")
    return {"accession": str(accession), "hl7_file": str(path)}


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.ris.mllp_client import send_messages, split_messages

    text = Path(values["hl7_file"]).read_text(encoding="utf-8")
    messages = [m.encode("utf-8") for m in split_messages(text)]
    send_messages(ctx.endpoints.host, ctx.endpoints.hl7_port, messages, ctx.cfg.timeout)


def _journal(ctx: LabContext) -> list[dict[str, Any]]:
    import httpx

    try:
        r = httpx.get(f"{ctx.endpoints.ris_url}/hl7/messages", timeout=ctx.cfg.timeout)
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise RisError(f"GET /hl7/messages failed: {exc}", "see `dicomkit logs ris`") from None
    return list(r.json())


@task("send-orm", _prepare, _show_me)
def send_orm(ctx: LabContext, values: Values) -> Seen | None:
    from dicomkit.ris.client import RisClient

    accession = values["accession"]
    try:
        order = RisClient(ctx.endpoints.ris_url, timeout=ctx.cfg.timeout).get_order(accession)
    except RisError as exc:
        if exc.status != 404:
            raise
        refused = [m for m in _journal(ctx) if m.get("accession") == accession and m["ack"] != "AA"]
        if refused:
            m = refused[-1]
            why = "; ".join(m.get("errors") or []) or m.get("text", "")
            return Seen(False, f"your {m['message_type']} answered {m['ack']}: {why}")
        return None
    o = order["order"]
    seen = (f"order {accession} for {o['patient_name']} in the RIS, made from your ORM^O01, and "
            f"worklist item {order['worklist_item_id']} for {order['station_aet']}")  # fmt: skip
    return Seen(True, seen, {"hl7_accession": accession, "hl7_file": values["hl7_file"],
                             "hl7_study_instance_uid": order["study_instance_uid"]})  # fmt: skip


@action("hl7_message_fields")
def hl7_message_fields(ctx: LabContext) -> None:
    import hl7

    path = Path(ctx.need("hl7_file", 9))
    msg = hl7.parse(path.read_text(encoding="utf-8").replace("\n", "\r").strip())
    rows = []
    for where, name, meaning in FIELDS:
        seg, num = where.split("-")
        try:
            value = str(msg.segment(seg)[int(num)])
        except (KeyError, IndexError):
            value = ""
        rows.append([where, name, value, meaning])
    ctx.out.show(ui.table(f"The ORM^O01 you sent ({path.name})", ["field", "name", "value",
                          "in the RIS and the worklist item"], rows))  # fmt: skip
    ctx.out.equivalent(f"cat {shlex.quote(str(path))}", "The message as text")


@action("hl7_refused_order")
def hl7_refused_order(ctx: LabContext) -> None:
    from dicomkit.ris.mllp_client import send_messages, split_messages

    accession = str(ctx.need("hl7_accession", 9))
    text = orm(accession, f"MSG-{accession}-BAD", obr18="")  # no accession: OBR-18 empty
    [ack] = send_messages(ctx.endpoints.host, ctx.endpoints.hl7_port,
                          [m.encode() for m in split_messages(text)], ctx.cfg.timeout)  # fmt: skip
    ctx.out.show(f"The tutor sent the same order with OBR-18 (the accession) empty. The RIS "
                 f"answered MSA-1 [bold]{ack.code}[/bold] for MSA-2 {ui.escape(ack.control_id)}: "
                 f"{ui.escape(ack.text)}")  # fmt: skip
    rows = [[e.location, e.code, e.text] for e in ack.errors]
    ctx.out.show(ui.table("ERR segments of the ACK", ["ERR-2 location", "ERR-3 code (0357)",
                          "text"], rows))  # fmt: skip
    ctx.out.show(ui.escape(ack.raw.replace("\r", "\n").strip()))
    ctx.out.equivalent(f"curl -sS {ctx.endpoints.ris_url}/hl7/messages",
                       "Every message the RIS received, with its ACK code")  # fmt: skip
