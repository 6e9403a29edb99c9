"""HL7 v2 orders and patient updates -> the RIS's orders (IHE Scheduled Workflow).

The mapping follows IHE RAD TF-2x Appendix B, "HL7 Order Mapping to DICOM MWL" (Table B-1 for
HL7 v2.3.1 ORM^O01, RAD-2/RAD-4; its v2.5.1 OMI^O23 counterpart adds the IPC segment):

    DICOM MWL attribute                    HL7 field (first one present wins)
    Accession Number (0008,0050)           OBR-18 Placer Field 1 (v2.5.1: IPC-1 when sent)
    Patient ID (0010,0020)                 PID-3.1 (first repetition)
    Patient's Name (0010,0010)             PID-5 (XPN family^given^middle^suffix^prefix)
    Patient's Birth Date (0010,0030)       PID-7 (date part)
    Patient's Sex (0010,0040)              PID-8 (HL7 table 0001: M, F, O; A/N -> O; U -> empty)
    Requested Procedure Code Seq (0032,1064)  OBR-4.1 Universal Service ID (code)
    Requested Procedure Description (0032,1060) OBR-4.2 (text; else the code)
    Modality (0008,0060)                   OBR-24 Diagnostic Serv Sect ID (v2.5.1: IPC-5 when sent)
    SPS Start Date/Time (0040,0002/3)      OBR-36 Scheduled Date/Time, else ORC-7.4 (TQ start),
                                           else TQ1-7 (v2.5.1)
    Referring Physician's Name (0008,0090) PV1-8 (XCN id^family^given^middle^suffix^prefix)

Everything else a worklist item needs (Study Instance UID, Requested Procedure ID, SPS ID,
Scheduled Station AE) the RIS assigns, exactly as for ``POST /orders``. Values are validated by
the same ``OrderIn`` model as the HTTP API; a broken rule is reported against the HL7 field the
value came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import hl7

# Message types this RIS takes (MSH-9.1 ^ MSH-9.2).
ORDER_TYPES = frozenset({("ORM", "O01"), ("OMI", "O23")})
PATIENT_UPDATE = ("ADT", "A08")
SUPPORTED = "ORM^O01, OMI^O23 (ORC-1 NW or CA) and ADT^A08"

# HL7 table 0357 (message error condition codes) used in our ERR segments.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNKNOWN_KEY = "204"
DUPLICATE_KEY = "205"
INTERNAL_ERROR = "207"

_ERROR_TEXT = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNKNOWN_KEY: "Unknown key identifier",
    DUPLICATE_KEY: "Duplicate key identifier",
    INTERNAL_ERROR: "Application internal error",
}

_SEX = {"M": "M", "F": "F", "O": "O", "A": "O", "N": "O", "U": ""}


@dataclass
class Hl7Problem(Exception):
    """Why a message is refused: the field it names (``PID-5``), an HL7 table 0357 code, and
    ``reject`` for message-level problems (MSA-1 AR) as opposed to content errors (AE)."""

    location: str  # "SEG-n" or "SEG"
    code: str
    text: str
    reject: bool = False

    def __str__(self) -> str:
        return f"{self.location}: {self.text}"

    @property
    def code_text(self) -> str:
        return _ERROR_TEXT.get(self.code, "")


@dataclass
class OrderRequest:
    """What an order message asks for: ``control`` NW or CA, the ``OrderIn`` fields, and for
    each field the HL7 location its value came from (to name it in an error)."""

    control: str
    fields: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def accession(self) -> str:
        return str(self.fields.get("accession", ""))


@dataclass
class PatientUpdate:
    patient_id: str
    changes: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)


def get(msg: hl7.Message, seg: str, num: int, comp: int = 0, rep: int = 1) -> str:
    """One field (or component) of the first ``seg`` segment, unescaped; "" when absent."""
    try:
        # msg["SEG.Fn.Rr.Cc"] without parsing the accessor string on every call
        value = msg.extract_field(seg, 1, num, rep, comp or None, None)
    except (KeyError, IndexError):
        return ""  # no such segment, or a simple field asked for a component past the first
    return str(msg.unescape(str(value))) if value else ""


def message_type(msg: hl7.Message) -> tuple[str, str]:
    return get(msg, "MSH", 9, 1).upper(), get(msg, "MSH", 9, 2).upper()


def _pn(components: list[str]) -> str:
    """HL7 XPN order (family, given, middle, suffix, prefix) -> DICOM PN (family, given,
    middle, prefix, suffix), trailing empty components dropped (PS3.5 6.2.1)."""
    family, given, middle, suffix, prefix = (components + [""] * 5)[:5]
    return "^".join([family, given, middle, prefix, suffix]).rstrip("^")


def _name(msg: hl7.Message, seg: str, num: int, first: int = 1) -> str:
    return _pn([get(msg, seg, num, c) for c in range(first, first + 5)])


def _date_time(ts: str) -> tuple[str, str]:
    """HL7 TS ``YYYYMMDD[HHMM[SS[.S+]]][+/-ZZZZ]`` -> (DA, TM); the zone is dropped, as the
    worklist is in local time."""
    core = ts.split("+")[0].split("-")[0].split(".")[0]
    return core[:8], core[8:14]


def _put(req: dict[str, Any], sources: dict[str, str], name: str, value: str, where: str) -> None:
    if value != "":
        req[name] = value
        sources[name] = where


def order_request(msg: hl7.Message) -> OrderRequest:
    """The order an ORM^O01 / OMI^O23 carries. Raises ``Hl7Problem`` for a missing segment or
    an order control other than NW / CA."""
    for seg in ("PID", "ORC", "OBR"):
        if not _has(msg, seg):
            raise Hl7Problem(seg, SEGMENT_SEQUENCE_ERROR, f"the message has no {seg} segment")
    if len(msg.segments("OBR")) > 1:
        raise Hl7Problem(
            "OBR", SEGMENT_SEQUENCE_ERROR, "one order (ORC/OBR pair) per message, please"
        )
    control = get(msg, "ORC", 1).upper()
    if control not in ("NW", "CA"):
        raise Hl7Problem(
            "ORC-1",
            TABLE_VALUE_NOT_FOUND,
            f"order control {control or '(empty)'!r} is not handled here: NW (new) or CA (cancel)",
        )
    f: dict[str, Any] = {}
    src: dict[str, str] = {}
    ipc = _has(msg, "IPC")
    _put(f, src, "accession", get(msg, "IPC", 1, 1) if ipc else "", "IPC-1")
    if "accession" not in f:
        _put(f, src, "accession", get(msg, "OBR", 18, 1), "OBR-18")
    if "accession" not in f:
        raise Hl7Problem("OBR-18", REQUIRED_FIELD_MISSING, "the accession number is empty")
    if control == "CA":
        return OrderRequest(control, f, src)

    _put(f, src, "patient_id", get(msg, "PID", 3, 1), "PID-3")
    _put(f, src, "patient_name", _name(msg, "PID", 5), "PID-5")
    _put(f, src, "birth_date", _date_time(get(msg, "PID", 7, 1))[0], "PID-7")
    _put(f, src, "sex", _sex(get(msg, "PID", 8)), "PID-8")
    _put(f, src, "procedure_code", get(msg, "OBR", 4, 1), "OBR-4")
    _put(f, src, "study_desc", get(msg, "OBR", 4, 2) or get(msg, "OBR", 4, 1), "OBR-4")
    _put(f, src, "modality", get(msg, "IPC", 5, 1) if ipc else "", "IPC-5")
    if "modality" not in f:
        _put(f, src, "modality", get(msg, "OBR", 24, 1).upper(), "OBR-24")
    for ts, where in (
        (get(msg, "OBR", 36, 1), "OBR-36"),
        (get(msg, "ORC", 7, 4), "ORC-7"),
        (get(msg, "TQ1", 7, 1), "TQ1-7"),
    ):
        if ts:
            date, time = _date_time(ts)
            _put(f, src, "scheduled_date", date, where)
            _put(f, src, "scheduled_time", time, where)
            break
    _put(f, src, "referring_physician", _name(msg, "PV1", 8, first=2), "PV1-8")
    for name, where in (
        ("patient_id", "PID-3"),
        ("patient_name", "PID-5"),
        ("modality", "OBR-24"),
    ):
        if name not in f:
            raise Hl7Problem(where, REQUIRED_FIELD_MISSING, f"is empty (needed for the {name})")
    return OrderRequest(control, f, src)


def patient_update(msg: hl7.Message) -> PatientUpdate:
    """The demographics an ADT^A08 carries. An empty field means "no change" and ``""`` (two
    double quotes) means "delete the value" (HL7 v2 2.5.3)."""
    if not _has(msg, "PID"):
        raise Hl7Problem("PID", SEGMENT_SEQUENCE_ERROR, "the message has no PID segment")
    patient_id = get(msg, "PID", 3, 1)
    if not patient_id:
        raise Hl7Problem("PID-3", REQUIRED_FIELD_MISSING, "the patient ID is empty")
    changes: dict[str, Any] = {}
    src: dict[str, str] = {}
    raw = {
        "patient_name": ("PID-5", get(msg, "PID", 5, 1), lambda: _name(msg, "PID", 5)),
        "birth_date": ("PID-7", get(msg, "PID", 7, 1), lambda: _date_time(get(msg, "PID", 7, 1))[0]),
        "sex": ("PID-8", get(msg, "PID", 8), lambda: _sex(get(msg, "PID", 8))),
    }  # fmt: skip
    for name, (where, first, value) in raw.items():
        if first == '""':
            if name == "patient_name":
                raise Hl7Problem(
                    where, REQUIRED_FIELD_MISSING, "a patient's name cannot be deleted"
                )
            changes[name], src[name] = None, where
        elif first:
            changes[name], src[name] = value(), where
    return PatientUpdate(patient_id, changes, src)


def _sex(value: str) -> str:
    return _SEX.get(value.upper(), value.upper())  # unknown codes go on to fail validation


def _has(msg: hl7.Message, seg: str) -> bool:
    try:
        msg.segment(seg)
    except KeyError:
        return False
    return True
