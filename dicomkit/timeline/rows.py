"""Timeline rows from what the lab's services recorded, one builder per record, and their
order. Pure functions of the records: sources.py fetches them."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

# IHE RAD TF-1 Scheduled Workflow transactions (RAD TF-2/TF-3 define each).
RAD = {
    "order": "RAD-2 Placer Order Management",
    "patient": "RAD-12 Patient Update",
    "worklist": "RAD-5 Query Modality Worklist",
    "mpps_start": "RAD-6 Modality Procedure Step In Progress",
    "mpps_end": "RAD-7 Modality Procedure Step Completed",
    "mpps_stop": "RAD-7 Modality Procedure Step Discontinued",
    "store": "RAD-8 Modality Images Stored",
    "commit": "RAD-10 Storage Commitment",
    "query": "RAD-14 Query Images",
    "retrieve": "RAD-16 Retrieve Images",
}
# Within one second, rows follow the workflow's order: Orthanc records seconds only.
_RANK = {RAD[k]: i for i, k in enumerate(
    ("order", "patient", "worklist", "mpps_start", "store", "mpps_end", "mpps_stop", "query",
     "commit", "retrieve"))}  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One message the lab saw."""

    at: str  # ISO 8601, UTC (milliseconds, or seconds where the recorder keeps only those)
    sender: str
    receiver: str
    transaction: str  # the IHE RAD-n
    message: str  # the DICOM / HL7 / HTTP message
    result: str
    source: str  # which record showed it


@dataclass
class Timeline:
    accession: str
    engine: str
    rows: list[Row] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)  # what this lab cannot see, in words

    def to_dict(self) -> dict[str, Any]:
        return {"accession": self.accession, "engine": self.engine,
                "rows": [asdict(r) for r in self.rows], "unseen": self.unseen}  # fmt: skip


def parse_time(text: str) -> _dt.datetime | None:
    """ISO 8601 (ours) or Orthanc's ``20261201T163501`` (UTC); None if neither."""
    text = text.strip()
    for fmt in ("%Y%m%dT%H%M%S", "%Y%m%dT%H%M%S.%f"):
        try:
            return _dt.datetime.strptime(text, fmt).replace(tzinfo=_dt.timezone.utc)
        except ValueError:
            pass
    try:
        at = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=_dt.timezone.utc)


def iso(text: str) -> str:
    """A recorded time as ISO 8601 UTC (milliseconds if it had them); unparseable: as it was."""
    at = parse_time(text)
    if at is None:
        return text
    at = at.astimezone(_dt.timezone.utc)
    # Milliseconds when the recorder kept them (even .000): a time without is "to the second".
    spec = "milliseconds" if at.microsecond or "." in text else "seconds"
    return at.isoformat(timespec=spec).replace("+00:00", "Z")


def ordered(rows: Iterable[Row]) -> list[Row]:
    """By time. A row timed to the second only (Orthanc's records) goes among the rows of that
    second by the workflow's order, since its place within the second is unknown; rows
    without a time go last."""
    far = _dt.datetime.max.replace(tzinfo=_dt.timezone.utc)

    def when(r: Row) -> _dt.datetime:
        return parse_time(r.at) or far

    def rank(r: Row) -> int:
        return _RANK.get(r.transaction, len(_RANK))

    def coarse(r: Row) -> bool:
        at = parse_time(r.at)
        return at is not None and "." not in r.at

    out = sorted((r for r in rows if not coarse(r)), key=when)
    for row in sorted((r for r in rows if coarse(r)), key=lambda r: (when(r), rank(r))):
        second = when(row)
        i = 0
        while i < len(out):
            other = when(out[i]).replace(microsecond=0)
            if other > second or (other == second and rank(out[i]) > rank(row)):
                break
            i += 1
        out.insert(i, row)
    return out


def _short(uid: str) -> str:
    return uid if len(uid) <= 24 else f"…{uid[-20:]}"


def from_order_events(events: list[dict[str, Any]], ris: str, mpps: str) -> list[Row]:
    """The RIS's order events (GET /events): arrival (HTTP or HL7), cancel, demographics,
    and each state the MPPS SCP reported, at the time the SCP received the message."""
    out: list[Row] = []
    src = "RIS order events"
    for e in events:
        d, via, kind = e.get("detail") or {}, e.get("via", ""), e.get("event", "")
        hl7 = f"{d.get('message_type', 'HL7')} (MLLP), MSH-10 {d.get('control_id', '')}"
        if kind == "created":
            item = "order created, its worklist item written"
            if via == "hl7":
                out.append(Row(iso(e["at"]), "HIS", ris, RAD["order"], f"{hl7} ORC-1 NW",
                               f"ACK AA: {item}", src))  # fmt: skip
            else:
                out.append(Row(iso(e["at"]), "HTTP client", ris, RAD["order"],
                               "POST /orders", f"201 Created: {item}", src))  # fmt: skip
        elif kind == "cancelled":
            msg = f"{hl7} ORC-1 CA" if via == "hl7" else "DELETE /orders/{accession}"
            sender = "HIS" if via == "hl7" else "HTTP client"
            out.append(Row(iso(e["at"]), sender, ris, RAD["order"], msg,
                           "order cancelled, worklist item removed", src))  # fmt: skip
        elif kind == "patient updated":
            fields = ", ".join(d.get("fields", []))
            out.append(Row(iso(e["at"]), "HIS", ris, RAD["patient"], hl7,
                           f"ACK AA: demographics changed ({fields})", src))  # fmt: skip
        elif kind in ("IN PROGRESS", "COMPLETED", "DISCONTINUED"):
            step = _short(str(d.get("mpps_sop_instance_uid", "")))
            rad = {"IN PROGRESS": "mpps_start", "COMPLETED": "mpps_end"}.get(kind, "mpps_stop")
            dimse = "N-CREATE" if kind == "IN PROGRESS" else "N-SET"
            told = iso(e["at"])
            heard = iso(str(d.get("received") or e["at"]))
            out.append(Row(heard, str(d.get("calling_aet") or "modality"), mpps, RAD[rad],
                           f"MPPS {dimse} {kind}, step {step}",
                           f"0x0000 Success; RIS order {kind} at {told[11:]}",
                           "MPPS SCP, via the RIS order events"))  # fmt: skip
    return out


def from_hl7_refusals(messages: list[dict[str, Any]], accession: str, ris: str) -> list[Row]:
    """HL7 messages about the accession the RIS did not accept (GET /hl7/messages): accepted
    ones are already order events."""
    return [
        Row(iso(m.get("received", "")), "HIS", ris, RAD["order"],
            f"{m.get('message_type', '')} (MLLP), MSH-10 {m.get('control_id', '')}",
            f"ACK {m.get('ack')}: {m.get('text', '')}", "RIS HL7 journal")
        for m in messages
        if m.get("accession") == accession and m.get("ack") != "AA"
    ]  # fmt: skip


def from_instances(instances: list[dict[str, str]], pacs: str) -> list[Row]:
    """The PACS's stored instances of the study: ReceptionDate, RemoteAET when recorded."""
    return [
        Row(iso(i.get("received", "")), i.get("remote_aet") or "(sender not recorded)", pacs,
            RAD["store"], f"C-STORE {_short(i.get('sop_instance_uid', ''))}",
            "stored (0x0000 Success)", i.get("source", "PACS"))
        for i in instances
    ]  # fmt: skip


def from_commitments(
    reports: list[dict[str, Any]], sop_uids: set[str], requester: str
) -> list[Row]:
    """Storage commitments naming any of the study's instances, from the requester's record:
    the N-ACTION and the N-EVENT-REPORT that answered it."""
    out: list[Row] = []
    src = "requester's commitment record"
    for r in reports:
        named = {str(i.get("sop_instance_uid")) for i in r.get("instances", [])}
        if not named & sop_uids:
            continue
        txn = _short(str(r.get("transaction_uid", "")))
        pacs = str(r.get("report_from") or r.get("peer", "PACS"))
        out.append(Row(iso(str(r.get("requested", ""))), requester, pacs, RAD["commit"],
                       f"N-ACTION Request Storage Commitment, {len(named)} instance(s), "
                       f"transaction {txn}", "accepted", src))  # fmt: skip
        out.append(Row(iso(str(r.get("reported", ""))), pacs, requester, RAD["commit"],
                       f"N-EVENT-REPORT on the {r.get('association', '?')} association",
                       f"{r.get('committed', 0)} committed, {r.get('failed', 0)} failed",
                       src))  # fmt: skip
    return out


COLUMNS = ["time (UTC)", "sender → receiver", "IHE", "message", "result"]


def table_rows(timeline: Timeline) -> list[list[str]]:
    """The rows as the CLI and the tutor print them: time of day (the date is in the title),
    the transaction by number (``legend`` names them)."""
    return [[r.at[11:] if len(r.at) > 11 else r.at or "(no time)", f"{r.sender} → {r.receiver}",
             r.transaction.split(" ")[0], r.message, r.result]
            for r in timeline.rows]  # fmt: skip


def legend(timeline: Timeline) -> str:
    """The transactions the rows name, in IHE's words (RAD TF-1 Scheduled Workflow)."""
    names = dict.fromkeys(r.transaction for r in timeline.rows)
    return "; ".join(names)


def title(timeline: Timeline) -> str:
    day = next((r.at[:10] for r in timeline.rows if len(r.at) > 10), "")
    return (f"Every message the lab saw for accession {timeline.accession} ({timeline.engine} "
            f"engine{', ' + day if day else ''})")  # fmt: skip


def _keys(keys: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" if v is not None else k for k, v in sorted(keys.items()))


def _matches(e: dict[str, Any]) -> str:
    n = e.get("matches")
    status = e.get("status")
    said = "" if status in (None, 0) else f"status 0x{int(status):04X}; "
    if n is None:
        return f"{said}answered (match count not recorded)"
    if e.get("matches_from"):
        # Counted over the worklist as it is now, not as it was then: not this query's answer.
        return f"{said}answered (Orthanc records no match count)"
    return f"{said}{n} match(es)"


def from_lab_events(
    events: list[dict[str, Any]], accession: str, sops: set[str], window: tuple[str, str]
) -> tuple[list[Row], set[str]]:
    """Rows from the lab's event feed (dicomkit/labevents.py): worklist C-FINDs naming the
    accession, or naming none within ``window`` (the order's lifetime: they may have listed
    it); study C-FINDs naming it; C-STOREs of its instances; associations refused within the
    window. Also the SOP instances whose C-STORE the feed showed."""
    start, end = (parse_time(t) for t in window)
    out: list[Row] = []
    stored: set[str] = set()
    src = "lab event feed"
    for e in events:
        at = parse_time(str(e.get("t", "")))
        inside = bool(at and start and end and start.replace(microsecond=0) <= at <= end)
        service, calling, called = (
            e.get("service"),
            str(e.get("calling", "")),
            str(e.get("called", "")),
        )
        keys = dict(e.get("keys") or {})
        named = keys.get("AccessionNumber")
        if service == "mwl-find" and (named == accession or (named is None and inside)):
            note = "" if named == accession else " (names no accession: a station's list)"
            out.append(Row(iso(e["t"]), calling, called, RAD["worklist"],
                           f"MWL C-FIND {_keys(keys)}{note}", _matches(e), src))  # fmt: skip
        elif service == "find" and named == accession:
            out.append(Row(iso(e["t"]), calling, called, RAD["query"],
                           f"C-FIND {e.get('level', '')} {_keys(keys)}", _matches(e), src))  # fmt: skip
        elif service == "store" and str(e.get("sop_instance_uid", "")) in sops:
            status = int(e.get("status") or 0)
            stored.add(str(e["sop_instance_uid"]))
            out.append(Row(iso(e["t"]), calling, called, RAD["store"],
                           f"C-STORE {_short(str(e['sop_instance_uid']))}",
                           "stored (0x0000 Success)" if status == 0 else f"status 0x{status:04X}",
                           src))  # fmt: skip
        elif service == "association" and e.get("accepted") is False and inside:
            out.append(Row(iso(e["t"]), calling, called, "association (PS3.8)",
                           "A-ASSOCIATE-RQ", f"rejected: {e.get('reason', '')}", src))  # fmt: skip
    return out, stored
