"""STOW-RS (PS3.18 10.5 Store Transaction): each part of a multipart/related body is checked
whole, then stored through the C-STORE path (``server.store_instance``), and the answer lists each
instance as referenced (stored) or failed, with its Failure Reason (PS3.18 10.5.3).

Nothing corrupt or half-written is ever stored: ``check_part`` walks a part to its end
(dicom/dataset.py, the walker every receiving path uses) and compares its SOP Class/Instance
UIDs with its File Meta Information before anything is written; ``store_instance`` writes a
file atomically (tmp + fsync + rename) before it is indexed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dicomkit.dicom import dataset

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

STUDY_INSTANCE_UID = 0x0020000D


class BadPart(ValueError):
    """A part that must not be stored, with the Failure Reason to answer."""

    def __init__(self, reason: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_part(raw: bytes) -> tuple[dataset.Part10, str, str, str]:
    """The part walked to its end (dicom/dataset.py), and its SOP Class, SOP Instance and
    Study Instance UIDs, the first two matching its File Meta Information (PS3.10 7.1).
    Raises BadPart with the Failure Reason otherwise. The one integrity check of STOW-RS."""
    from dicomkit.pacs.server import dictionary_vr

    try:
        part = dataset.parse_part10(raw, vr_of=dictionary_vr)
    except dataset.Malformed as exc:
        raise BadPart(CANNOT_UNDERSTAND, str(exc)) from None
    sop_class, sop_uid = part.dataset.sop_uids()
    study = part.dataset.text(STUDY_INSTANCE_UID) or ""
    if not sop_class or not sop_uid:
        raise BadPart(DATA_SET_DOES_NOT_MATCH, "the data set has no SOP Class or Instance UID")
    meta = part.meta
    if (meta.sop_class, meta.sop_instance) != (sop_class, sop_uid):
        raise BadPart(
            DATA_SET_DOES_NOT_MATCH,
            f"the File Meta Information names {meta.sop_class}/{meta.sop_instance}, "
            f"the data set {sop_class}/{sop_uid}",
        )
    return part, sop_class, sop_uid, study


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
    """Check one part, then store it through the C-STORE path (``server.store_instance``)."""
    from dicomkit.pacs.server import store_instance

    raw = as_part10(raw)
    try:
        part, sop_class, sop_uid, its_study = check_part(raw)
    except BadPart as exc:
        return Outcome("", "", "", exc.reason, str(exc))
    if study is not None and its_study != study:
        # PS3.18 10.5.1: with a study in the URL, every instance must belong to it.
        return Outcome(sop_class, sop_uid, its_study, DATA_SET_DOES_NOT_MATCH,
                       f"its Study Instance UID {its_study} is not {study}")  # fmt: skip
    meta = part.meta
    status, comment = store_instance(sop_class, sop_uid, meta.transfer_syntax,
                                     raw[meta.offset :], storage, index, parsed=part.dataset)  # fmt: skip
    reason = "" if status == SUCCESS else comment or f"the storage answered 0x{status:04X}"
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
