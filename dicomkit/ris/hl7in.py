"""The RIS's HL7 v2 inbound interface: one message in (the bytes of one MLLP block), one ACK
out. Orders go through the same ``OrderIn`` validation and ``OrderStore`` as ``POST /orders``.

HL7 parsing and ACK building use the ``hl7`` package (python-hl7); see ``ris/mllp.py`` for why.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dicomkit.ris import hl7map
from dicomkit.ris.hl7map import Hl7Problem

if TYPE_CHECKING:
    import hl7

    from dicomkit.ris.store import OrderStore

log = logging.getLogger(__name__)

# MSH-18 values we decode (HL7 table 0211); empty means the HL7 default, which we take as UTF-8.
CHARSETS = {"": "utf-8", "UNICODE UTF-8": "utf-8", "ASCII": "ascii", "8859/1": "latin-1"}
RECOMMENDED_DELIMITERS = b"^~\\&"  # MSH-2, HL7 v2 2.5.4; IHE profiles expect these
OUR_APPLICATION = "DICOMKIT_RIS"


@dataclass
class Received:
    """One message as the RIS saw it: what lessons and `GET /hl7/messages` show."""

    received: str
    message_type: str
    control_id: str
    ack: str  # AA, AE or AR
    text: str
    accession: str = ""
    order_control: str = ""
    errors: list[str] = field(default_factory=list)


class Journal:
    """The last messages received (in memory; the orders themselves are in the store)."""

    def __init__(self, size: int = 500) -> None:
        self._items: deque[Received] = deque(maxlen=size)

    def add(self, item: Received) -> None:
        self._items.append(item)

    def list(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in list(self._items)]


def handle(block: bytes, store: OrderStore, journal: Journal | None = None) -> bytes:
    """The ACK (encoded, unframed) for one message. Never raises: every failure is an ACK."""
    try:
        return _handle(block, store, journal)
    except Exception:  # a bug in building the ACK itself: still answer
        log.exception("HL7: could not build an ACK")
        return FALLBACK_ACK


# An AR with no reference to the message, for when even building an ACK failed.
FALLBACK_ACK = (
    b"MSH|^~\\&|DICOMKIT_RIS||||||ACK|0|P|2.5.1\r"
    b"MSA|AR||internal error, see the RIS log\r"
    b"ERR||MSH^1|207^Application internal error^HL70357|E\r"
)


def _handle(block: bytes, store: OrderStore, journal: Journal | None) -> bytes:
    import hl7

    msg: hl7.Message | None = None
    kind = control = accession = order_control = ""
    try:
        text, encoding = decode(block)
        try:
            msg = hl7.parse(text)
        except Exception as exc:  # the parser raises plain ValueError/IndexError on garbage
            raise Hl7Problem(
                "MSH", hl7map.SEGMENT_SEQUENCE_ERROR, f"unparseable: {exc}", True
            ) from None
        control = hl7map.get(msg, "MSH", 10)
        kind = "^".join(hl7map.message_type(msg))
        code, note = _dispatch(msg, store)
        problems: list[Hl7Problem] = []
        if code == "AA":
            accession, order_control = note.get("accession", ""), note.get("control", "")
        ack = _ack(msg, code, note["text"], problems, encoding)
    except _Refused as refused:
        problems = refused.problems
        code = "AR" if any(p.reject for p in problems) else "AE"
        note = {"text": "; ".join(str(p) for p in problems)}
        accession, order_control = refused.accession, refused.control
        ack = _ack(msg, code, note["text"], problems, "utf-8", block)
    except Hl7Problem as problem:
        problems = [problem]
        code = "AR" if problem.reject else "AE"
        note = {"text": str(problem)}
        ack = _ack(msg, code, note["text"], problems, "utf-8", block)
    except Exception as exc:  # a bug or the disk: say so in the ACK, keep serving
        log.exception("HL7 message failed")
        problems = [Hl7Problem("MSH", hl7map.INTERNAL_ERROR, f"internal error: {exc}")]
        code, note = "AE", {"text": str(problems[0])}
        ack = _ack(msg, code, note["text"], problems, "utf-8", block)
    if journal is not None:
        journal.add(
            Received(
                received=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
                message_type=kind,
                control_id=control,
                ack=code,
                text=note["text"],
                accession=accession,
                order_control=order_control,
                errors=[str(p) for p in problems],
            )
        )
    return ack


def refusal(text: str) -> bytes:
    """An AR for a block that never became a message (framing, size)."""
    problem = Hl7Problem("MSH", hl7map.SEGMENT_SEQUENCE_ERROR, text, True)
    return _ack(None, "AR", str(problem), [problem], "utf-8")


class _Refused(Exception):
    def __init__(self, problems: list[Hl7Problem], accession: str = "", control: str = ""):
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems
        self.accession = accession
        self.control = control


def decode(block: bytes) -> tuple[str, str]:
    """The message as text, in the character set MSH-18 names; segments end in CR (LF and
    CRLF from files are taken as CR). Raises ``Hl7Problem`` (reject) for what cannot be read."""
    block = block.strip(b"\r\n\t ")
    if not block.startswith(b"MSH"):
        head = block[:3].decode("ascii", "replace")
        raise Hl7Problem(
            "MSH",
            hl7map.SEGMENT_SEQUENCE_ERROR,
            f"a message must begin with an MSH segment (it begins with {head!r})",
            True,
        )
    sep = block[3:4]
    if sep != b"|":
        raise Hl7Problem(
            "MSH-1",
            hl7map.DATA_TYPE_ERROR,
            f"the field separator is {sep.decode('latin-1')!r}: this RIS takes HL7's recommended '|'",
            True,
        )
    first = block.replace(b"\n", b"\r").split(b"\r", 1)[0].split(b"|")
    if first[1] != RECOMMENDED_DELIMITERS:
        raise Hl7Problem(
            "MSH-2",
            hl7map.DATA_TYPE_ERROR,
            f"the encoding characters are {first[1].decode('latin-1')!r}: "
            "this RIS takes HL7's recommended '^~\\&'",
            True,
        )
    charset = (first[17] if len(first) > 17 else b"").decode("ascii", "replace").strip()
    encoding = CHARSETS.get(charset.upper())
    if encoding is None:
        raise Hl7Problem(
            "MSH-18",
            hl7map.TABLE_VALUE_NOT_FOUND,
            f"character set {charset!r} is not one of: UNICODE UTF-8 (or empty), ASCII, 8859/1",
            True,
        )
    try:
        text = block.decode(encoding)
    except UnicodeDecodeError as exc:
        raise Hl7Problem(
            "MSH-18",
            hl7map.DATA_TYPE_ERROR,
            f"the message is not valid {charset or 'UTF-8'} (byte {exc.start}: "
            f"{block[exc.start : exc.start + 1]!r}); send UTF-8 or declare MSH-18 8859/1",
            True,
        ) from None
    return text.replace("\r\n", "\r").replace("\n", "\r"), encoding


def _dispatch(msg: hl7.Message, store: OrderStore) -> tuple[str, dict[str, str]]:
    kind = hl7map.message_type(msg)
    # Kept with the order's events: which message made the change.
    carried = {"message_type": "^".join(kind), "control_id": hl7map.get(msg, "MSH", 10)}
    if kind in hl7map.ORDER_TYPES:
        return _order(hl7map.order_request(msg), store, carried)
    if kind == hl7map.PATIENT_UPDATE:
        return _patient(hl7map.patient_update(msg), store, carried)
    known = {t for t, _ in hl7map.ORDER_TYPES} | {hl7map.PATIENT_UPDATE[0]}
    shown = "^".join(kind) or "(empty)"
    raise Hl7Problem(
        "MSH-9",
        hl7map.UNSUPPORTED_EVENT_CODE if kind[0] in known else hl7map.UNSUPPORTED_MESSAGE_TYPE,
        f"message type {shown} is not handled here (this RIS takes {hl7map.SUPPORTED})",
        True,
    )


def _order(
    req: hl7map.OrderRequest, store: OrderStore, carried: dict[str, str]
) -> tuple[str, dict[str, str]]:
    from pydantic import ValidationError

    from dicomkit.ris.models import OrderIn
    from dicomkit.ris.store import DuplicateAccession, OrderNotFound

    where = req.sources.get("accession", "OBR-18")
    if req.control == "CA":
        try:
            out = store.delete(req.accession, "hl7", carried)
        except OrderNotFound:
            raise _Refused(
                [Hl7Problem(where, hl7map.UNKNOWN_KEY, f"no order with accession {req.accession}")],
                req.accession,
                "CA",
            ) from None
        return "AA", {
            "text": f"order {out.order.accession} cancelled; its worklist item is gone",
            "accession": req.accession,
            "control": "CA",
        }
    try:
        order = OrderIn.model_validate(req.fields)
    except ValidationError as exc:
        raise _Refused(_problems(exc, req.sources), req.accession, "NW") from None
    try:
        out = store.create(order, "hl7", carried)
    except DuplicateAccession:
        raise _Refused(
            [
                Hl7Problem(
                    where,
                    hl7map.DUPLICATE_KEY,
                    f"accession {order.accession} already has an order "
                    "(cancel it first with ORC-1 CA, or use a new accession)",
                )
            ],
            req.accession,
            "NW",
        ) from None
    return "AA", {
        "text": f"order {order.accession} created: worklist item {out.worklist_item_id}",
        "accession": order.accession,
        "control": "NW",
    }


def _patient(
    update: hl7map.PatientUpdate, store: OrderStore, carried: dict[str, str]
) -> tuple[str, dict[str, str]]:
    from pydantic import ValidationError

    try:
        changed = store.update_patient(update.patient_id, update.changes, carried)
    except ValidationError as exc:
        raise _Refused(_problems(exc, update.sources)) from None
    return "AA", {
        "text": f"patient {update.patient_id}: {len(changed)} open order(s) updated",
    }


def _problems(exc: Any, sources: dict[str, str]) -> list[Hl7Problem]:
    out = []
    for err in exc.errors():
        name = str(err.get("loc", ("?",))[0])
        where = sources.get(name, name)
        text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        code = (
            hl7map.REQUIRED_FIELD_MISSING
            if err.get("type") == "missing"
            else hl7map.DATA_TYPE_ERROR
        )
        out.append(Hl7Problem(where, code, f"{name} {text}"))
    return out


def _ack(
    msg: hl7.Message | None,
    code: str,
    text: str,
    problems: list[Hl7Problem],
    encoding: str,
    raw: bytes = b"",
) -> bytes:
    """An original-mode ACK (HL7 v2 2.9.2) built by python-hl7's ``create_ack``, with MSA-3
    and one ERR segment per problem (ERR-1 for v2.3.1 readers, ERR-2/3/4/8 for v2.5)."""
    import hl7

    if msg is None:
        # The message could not be parsed: answer from a stand-in header with its control ID.
        msg = hl7.parse(f"MSH|^~\\&|||||||ACK^|{_raw_control_id(raw)}|P|2.5.1")
        encoding = "utf-8"
    else:
        # create_ack needs MSH-9 with two components and fields up to MSH-12: a short or
        # odd header gets a complete stand-in with the same values.
        msg = hl7.parse(_full_header(msg))
    ack = msg.create_ack(code, application=OUR_APPLICATION, facility="")
    ack.segment("MSA").assign_field(msg.escape(text[:200]), 3)
    out = str(ack)
    for p in problems:
        seg, _, num = p.location.partition("-")
        eld = f"{seg}^1^{num}^{p.code}&{msg.escape(p.code_text)}&HL70357"
        erl = f"{seg}^1" + (f"^{num}" if num else "")
        cwe = f"{p.code}^{msg.escape(p.code_text)}^HL70357"
        out += f"ERR|{eld}|{erl}|{cwe}|E||||{msg.escape(p.text)}\r"
    return out.encode(encoding, "replace")


def _full_header(msg: hl7.Message) -> str:
    """The message's MSH-1..12, every field present, MSH-9 as type^trigger."""
    seg = msg.segment("MSH")

    def raw(n: int) -> str:
        return str(seg(n)) if len(seg) > n else ""  # as sent (escapes kept): safe to paste

    kind, trigger = hl7map.message_type(msg)
    fields = [raw(n) for n in range(3, 9)]
    return "|".join(
        ["MSH", "^~\\&", *fields, f"{kind or 'ACK'}^{trigger}", raw(10), raw(11) or "P",
         raw(12) or "2.5.1"]
    )  # fmt: skip


def _raw_control_id(raw: bytes) -> str:
    """MSH-10 of a message we could not parse, if it can be found; only safe characters."""
    first = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not first.startswith(b"MSH") or len(first) < 4:
        return ""
    parts = first.split(first[3:4])
    value = parts[9].decode("ascii", "replace") if len(parts) > 9 else ""
    return "".join(c for c in value if c.isalnum() or c in "-._")[:20]
