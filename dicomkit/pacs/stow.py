"""STOW-RS (PS3.18 10.5 Store Transaction): each part of a multipart/related body is checked
whole, then stored through the C-STORE path (``server.store_raw``), and the answer lists each
instance as referenced (stored) or failed, with its Failure Reason (PS3.18 10.5.3).

Nothing corrupt or half-written is ever stored: ``check_part`` parses a part to its end and
compares its SOP Class/Instance UIDs with its File Meta Information before anything is written;
``store_raw`` writes a file atomically (tmp + fsync + rename) before it is indexed.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dicomkit.pacs.index import Index
    from dicomkit.pacs.storage import Storage

log = logging.getLogger(__name__)

# PS3.18 10.5.3 Failure Reasons (the C-STORE statuses of PS3.4 B.2.3).
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900  # the data set does not match its SOP Class / its meta
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
SUCCESS = 0x0000

_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_MAX_DEPTH = 64


class BadPart(ValueError):
    """A part that must not be stored, with the Failure Reason to answer."""

    def __init__(self, reason: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Walk:
    b: bytes
    explicit: bool
    fmt: str  # "<" little endian, ">" big endian (PS3.5 7.3)

    def tag_at(self, pos: int, end: int) -> int:
        if pos + 8 > end:
            raise BadPart(
                CANNOT_UNDERSTAND, f"the data set ends inside an element header at byte {pos}"
            )
        group, elem = struct.unpack_from(self.fmt + "HH", self.b, pos)
        return int(group) << 16 | int(elem)

    def elements(self, pos: int, end: int, depth: int, item: bool = False) -> int:
        """Walk elements from ``pos`` to ``end``; an undefined-length item stops at its
        delimiter. Returns the offset after the last byte walked."""
        if depth > _MAX_DEPTH:
            raise BadPart(CANNOT_UNDERSTAND, "sequences nested too deep")
        while pos < end:
            tag = self.tag_at(pos, end)
            if tag == _ITEM_END and item:
                return pos + 8
            if tag >> 16 == 0xFFFE:
                raise BadPart(CANNOT_UNDERSTAND, f"an unexpected delimiter at byte {pos}")
            if self.explicit:
                vr = self.b[pos + 4 : pos + 6]
                if len(vr) < 2 or not (vr.isalpha() and vr.isupper()):
                    raise BadPart(CANNOT_UNDERSTAND, f"no valid VR at byte {pos + 4}")
                if vr in _LONG_VRS:
                    if pos + 12 > end:
                        raise BadPart(
                            CANNOT_UNDERSTAND,
                            f"the data set ends inside an element header at byte {pos}",
                        )
                    (length,) = struct.unpack_from(self.fmt + "I", self.b, pos + 8)
                    vpos = pos + 12
                else:
                    (length,) = struct.unpack_from(self.fmt + "H", self.b, pos + 6)
                    vpos = pos + 8
            else:
                vr = b"SQ"  # implicit VR: only a sequence may have an undefined length
                (length,) = struct.unpack_from(self.fmt + "I", self.b, pos + 4)
                vpos = pos + 8
            if length == _UNDEFINED:
                if vr not in (b"SQ", b"OB", b"OW", b"UN"):
                    raise BadPart(
                        CANNOT_UNDERSTAND, f"undefined length for VR {vr!r} at byte {pos}"
                    )
                if vr == b"UN":  # PS3.5 6.2.2: its items are implicit VR little endian
                    inner = _Walk(self.b, explicit=False, fmt="<")
                    pos = inner.items(vpos, end, depth + 1, undefined=True, opaque=False)
                    continue
                opaque = vr != b"SQ"  # encapsulated pixel data: fragments are bytes (PS3.5 A.4)
                pos = self.items(vpos, end, depth + 1, undefined=True, opaque=opaque)
                continue
            if vpos + length > end:
                raise BadPart(
                    CANNOT_UNDERSTAND,
                    f"the data set ends inside element ({tag >> 16:04X},{tag & 0xFFFF:04X}): "
                    f"it claims {length} bytes, {max(0, end - vpos)} remain",
                )
            if self.explicit and vr == b"SQ":
                self.items(vpos, vpos + length, depth + 1, undefined=False, opaque=False)
            pos = vpos + length
        if item:
            raise BadPart(CANNOT_UNDERSTAND, "the data set ends inside a sequence item")
        return pos

    def items(self, pos: int, end: int, depth: int, undefined: bool, opaque: bool) -> int:
        """Items (or encapsulated fragments) of a sequence; PS3.5 7.5."""
        while pos < end:
            tag = self.tag_at(pos, end)
            (length,) = struct.unpack_from(self.fmt + "I", self.b, pos + 4)
            pos += 8
            if tag == _SEQ_END and undefined:
                return pos
            if tag != _ITEM:
                raise BadPart(CANNOT_UNDERSTAND, f"no item where one was expected, byte {pos - 8}")
            if length == _UNDEFINED and not opaque:
                pos = self.elements(pos, end, depth, item=True)
            else:
                if pos + length > end:
                    raise BadPart(CANNOT_UNDERSTAND, "the data set ends inside a sequence item")
                if not opaque:
                    self.elements(pos, pos + length, depth)
                pos += length
        if undefined:
            raise BadPart(CANNOT_UNDERSTAND, "the data set ends inside a sequence (no delimiter)")
        return pos


def check_part(raw: bytes) -> tuple[str, str, str]:
    """(SOP Class UID, SOP Instance UID, Study Instance UID) of a Part 10 file's bytes, after
    walking its whole data set and comparing the UIDs with its File Meta Information (PS3.10
    7.1). Raises BadPart with the Failure Reason otherwise. The one integrity check of STOW-RS."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    if len(raw) < 132 or raw[128:132] != b"DICM":
        raise BadPart(CANNOT_UNDERSTAND, "not a DICOM Part 10 file (no 'DICM' prefix)")
    try:
        ds = dcmread(BytesIO(raw), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, struct.error) as exc:
        raise BadPart(CANNOT_UNDERSTAND, f"cannot parse the data set: {exc}") from None
    meta = ds.file_meta
    ts = str(meta.get("TransferSyntaxUID", "")).strip()
    if not ts:
        raise BadPart(CANNOT_UNDERSTAND, "the File Meta Information has no Transfer Syntax UID")
    meta_len = meta.get("FileMetaInformationGroupLength")
    start = 132 + 12 + int(meta_len) if meta_len is not None else _after_meta(raw)
    body = raw[start:]
    if ts == _DEFLATED:
        try:
            body = zlib.decompress(body, -zlib.MAX_WBITS)  # PS3.5 A.5: raw deflate
        except zlib.error as exc:
            raise BadPart(CANNOT_UNDERSTAND, f"the deflated data set is corrupt: {exc}") from None
    walk = _Walk(body, explicit=ts != _IMPLICIT_LE, fmt=">" if ts == _EXPLICIT_BE else "<")
    walk.elements(0, len(body), 0)
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    sop_uid = str(ds.get("SOPInstanceUID", "") or "").strip()
    study = str(ds.get("StudyInstanceUID", "") or "").strip()
    if not sop_class or not sop_uid:
        raise BadPart(DATA_SET_DOES_NOT_MATCH, "the data set has no SOP Class or Instance UID")
    meta_class = str(meta.get("MediaStorageSOPClassUID", "") or "").strip()
    meta_uid = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip()
    if (meta_class, meta_uid) != (sop_class, sop_uid):
        raise BadPart(
            DATA_SET_DOES_NOT_MATCH,
            f"the File Meta Information names {meta_class}/{meta_uid}, "
            f"the data set {sop_class}/{sop_uid}",
        )
    return sop_class, sop_uid, study


def _after_meta(raw: bytes) -> int:
    """The offset after group 0002 when the meta has no group length (explicit VR LE)."""
    pos = 132
    while pos + 8 <= len(raw) and raw[pos : pos + 2] == b"\x02\x00":
        vr = raw[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            pos += 12 + struct.unpack_from("<I", raw, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", raw, pos + 6)[0]
    return pos


@dataclass
class Outcome:
    """What became of one part."""

    sop_class: str
    sop_uid: str
    study: str
    status: int
    reason: str = ""


@dataclass
class StowResult:
    stored: list[Outcome] = field(default_factory=list)
    failed: list[Outcome] = field(default_factory=list)


def as_part10(raw: bytes) -> bytes:
    """The part as a Part 10 file. pydicom's ``dcmwrite`` (which dicomweb-client uses) writes
    the File Meta Information without the 128-byte preamble and "DICM" when the data set has
    no preamble; Orthanc stores those too, so the preamble is added (PS3.10 7.1)."""
    vr = raw[4:6]
    if raw[128:132] != b"DICM" and raw[:2] == b"\x02\x00" and vr.isalpha() and vr.isupper():
        return b"\0" * 128 + b"DICM" + raw
    return raw


def store_part(raw: bytes, storage: Storage, index: Index, study: str | None) -> Outcome:
    """Check one part, then store it through the C-STORE path."""
    from dicomkit.pacs.server import store_raw

    raw = as_part10(raw)
    try:
        sop_class, sop_uid, its_study = check_part(raw)
    except BadPart as exc:
        return Outcome("", "", "", exc.reason, str(exc))
    if study is not None and its_study != study:
        # PS3.18 10.5.1: with a study in the URL, every instance must belong to it.
        return Outcome(sop_class, sop_uid, its_study, DATA_SET_DOES_NOT_MATCH,
                       f"its Study Instance UID {its_study} is not {study}")  # fmt: skip
    status = store_raw(raw, storage, index)
    reason = "" if status == SUCCESS else f"the storage answered 0x{status:04X}"
    return Outcome(sop_class, sop_uid, its_study, status, reason)


def response(result: StowResult, base: str) -> dict[str, Any]:
    """The Store Instances Response Module (PS3.18 10.5.3) as JSON."""
    out: dict[str, Any] = {}
    studies = {o.study for o in result.stored}
    if len(studies) == 1:
        out["00081190"] = {"vr": "UR", "Value": [f"{base}/studies/{next(iter(studies))}"]}

    def ref(o: Outcome) -> dict[str, Any]:
        item: dict[str, Any] = {
            "00081150": {"vr": "UI", "Value": [o.sop_class]} if o.sop_class else {"vr": "UI"},
            "00081155": {"vr": "UI", "Value": [o.sop_uid]} if o.sop_uid else {"vr": "UI"},
        }
        return item

    if result.stored:
        out["00081199"] = {"vr": "SQ", "Value": [
            {**ref(o), "00081190": {"vr": "UR", "Value": [
                f"{base}/studies/{o.study}/instances/{o.sop_uid}"]}}
            for o in result.stored
        ]}  # fmt: skip
    if result.failed:
        out["00081198"] = {"vr": "SQ", "Value": [
            {**ref(o), "00081197": {"vr": "US", "Value": [o.status]}} for o in result.failed
        ]}  # fmt: skip
    return out
