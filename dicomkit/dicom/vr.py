"""Value Representation checks (PS3.5 6.2), used to validate orders before they become DICOM.

Each ``check_*`` returns the normalised value or raises ``ValueError`` with a message that says
which rule was broken, so the RIS can answer 422 with one message per field.
"""

from __future__ import annotations

import datetime as _dt
import re

# PS3.5 6.1.2.3: in the default repertoire the only control characters allowed in
# short strings are ESC (for ISO 2022 code extensions); LF/CR/FF/TAB only in ST/LT/UT.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CS = re.compile(r"^[A-Z0-9 _]*$")  # PS3.5 Table 6.2-1 CS
_ASCII_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")

# PS3.3 C.7.3.1.1.1 Modality defined terms (current ones a learner is likely to meet).
MODALITIES = frozenset(
    [
        "AR",
        "ASMT",
        "AU",
        "BDUS",
        "BI",
        "BMD",
        "CR",
        "CT",
        "CTPROTOCOL",
        "DG",
        "DMS",
        "DOC",
        "DX",
        "ECG",
        "EPS",
        "ES",
        "FID",
        "GM",
        "HC",
        "HD",
        "IO",
        "IOL",
        "IVOCT",
        "IVUS",
        "KER",
        "KO",
        "LEN",
        "LS",
        "MG",
        "MR",
        "M3D",
        "NM",
        "OAM",
        "OCT",
        "OP",
        "OPM",
        "OPT",
        "OPTBSV",
        "OPTENF",
        "OPV",
        "OSS",
        "OT",
        "PLAN",
        "PR",
        "PT",
        "PX",
        "REG",
        "RESP",
        "RF",
        "RG",
        "RTDOSE",
        "RTIMAGE",
        "RTINTENT",
        "RTPLAN",
        "RTRAD",
        "RTRECORD",
        "RTSEGANN",
        "RTSTRUCT",
        "RWV",
        "SEG",
        "SM",
        "SMR",
        "SR",
        "SRF",
        "STAIN",
        "TEXTUREMAP",
        "TG",
        "US",
        "VA",
        "XA",
        "XC",
    ]
)

MAX_LEN = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "DA": 8, "TM": 14}


def _unicode(value: str, vr: str) -> None:
    # JSON may carry lone surrogates ("\\ud800"): text no character set can encode.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"is not valid Unicode text (lone surrogate) ({vr})") from None


def _common(value: str, vr: str, ascii_only: bool) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string ({vr})")
    _unicode(value, vr)
    if "\\" in value:
        raise ValueError(f"must not contain a backslash: it separates values in DICOM ({vr})")
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(f"must not contain control character {bad.group()!r} ({vr})")
    if ascii_only and not _ASCII_PRINTABLE.match(value):
        raise ValueError(f"must be plain ASCII letters, digits and punctuation ({vr})")
    limit = MAX_LEN[vr]
    if len(value) > limit:
        raise ValueError(f"is {len(value)} characters; {vr} allows at most {limit}")
    return value


def check_sh(value: str, *, ascii_only: bool = False, required: bool = False) -> str:
    value = _common(value, "SH", ascii_only).strip()
    if required and not value:
        raise ValueError("is required and must not be blank (SH)")
    return value


def check_lo(value: str, *, ascii_only: bool = False, required: bool = False) -> str:
    value = _common(value, "LO", ascii_only).strip()
    if required and not value:
        raise ValueError("is required and must not be blank (LO)")
    return value


def check_ae(value: str) -> str:
    value = _common(value, "AE", True).strip()
    if not value:
        raise ValueError("must not be blank (AE, 1-16 characters)")
    return value


def check_cs(value: str, *, allowed: frozenset[str] | None = None) -> str:
    value = _common(value.strip().upper(), "CS", True)
    if not _CS.match(value):
        raise ValueError("may only hold upper-case letters, digits, space and underscore (CS)")
    if allowed is not None and value not in allowed:
        raise ValueError(f"{value!r} is not one of the defined terms")
    return value


def check_modality(value: str) -> str:
    value = check_cs(value)
    if value not in MODALITIES:
        raise ValueError(
            f"{value!r} is not a DICOM modality (PS3.3 C.7.3.1.1.1); e.g. CR, CT, MR, US, DX"
        )
    return value


def check_pn(value: str) -> str:
    """PN: up to three component groups (alphabetic=ideographic=phonetic), each with up to
    five ``^``-separated components and at most 64 characters (PS3.5 6.2.1.2)."""
    if not isinstance(value, str):
        raise ValueError("must be a string (PN)")
    _unicode(value, "PN")
    if "\\" in value:
        raise ValueError("must not contain a backslash (PN)")
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(f"must not contain control character {bad.group()!r} (PN)")
    value = value.strip()
    if not value:
        raise ValueError("is required, e.g. DOE^JANE (family^given) (PN)")
    groups = value.split("=")
    if len(groups) > 3:
        raise ValueError("has more than 3 '='-separated component groups (PN)")
    for g in groups:
        if len(g) > 64:
            raise ValueError(f"component group {g[:20]!r}... is {len(g)} characters; PN allows 64")
        if len(g.split("^")) > 5:
            raise ValueError("has more than 5 '^'-separated components (PN)")
    return value


def check_da(value: str) -> str:
    value = value.strip()
    if not re.fullmatch(r"\d{8}", value):
        raise ValueError("must be a date as YYYYMMDD (DA)")
    try:
        _dt.datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise ValueError(f"{value} is not a calendar date (DA)") from None
    return value


def check_tm(value: str) -> str:
    value = value.strip().replace(":", "")
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?", value)
    if not m:
        raise ValueError("must be a time as HHMM or HHMMSS (TM)")
    hh, mm, ss = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)
    if hh > 23 or mm > 59 or ss > 60:
        raise ValueError(f"{value} is not a time of day (TM)")
    return value


def needs_utf8(*values: str | None) -> bool:
    """True when any value falls outside the default repertoire (then SpecificCharacterSet
    must be declared; we use ISO_IR 192, UTF-8)."""
    return any(v is not None and not v.isascii() for v in values)


def check_date_range(value: str) -> str:
    """A DA matching key: ``YYYYMMDD``, ``A-B``, ``A-`` or ``-B`` (PS3.4 C.2.2.2.5)."""
    value = value.strip()
    if value.lower() == "today":
        return _dt.date.today().strftime("%Y%m%d")
    if "-" in value:
        start, _, end = value.partition("-")
        if not start and not end:
            raise ValueError("a range needs a start or an end date")
        if start:
            check_da(start)
        if end:
            check_da(end)
        return value
    return check_da(value)
