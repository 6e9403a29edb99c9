"""The modality's side of MPPS (PS3.4 Annex F; IHE RAD-6/RAD-7): N-CREATE a step from the
worklist item (IN PROGRESS), then N-SET it COMPLETED (with the series the PACS holds) or
DISCONTINUED. The step's SOP Instance UID is kept between the two in one small file."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.dicom.net import Peer, association, status_category, status_name
from dicomkit.errors import DimseFailure, StateError, UsageError
from dicomkit.fsutil import atomic_write_text

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

MPPS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step SOP Class
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"

# PS3.7 Annex C / PS3.4 F.7.2: the N-CREATE and N-SET statuses, named.
NAMES = {
    0x0106: "Failure: invalid attribute value",
    0x0110: "Failure: processing failure",
    0x0111: "Failure: duplicate SOP instance",
    0x0112: "Failure: no such SOP instance",
    0x0118: "Failure: no such SOP class",
    0x0120: "Failure: missing attribute",
    0x0121: "Failure: missing attribute value",
}


@dataclass
class StepRecord:
    """What the modality remembers of a step it started."""

    accession: str
    sop_instance_uid: str
    state: str
    study_instance_uid: str
    peer: str
    started: str
    ended: str = ""


class StepBook:
    """The steps this modality started, by accession: one JSON file, rewritten whole and
    atomically (a reader never sees half of it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StateError(
                f"the MPPS step file {self.path} is unreadable ({exc})",
                f"delete {self.path} (the steps stay on the MPPS SCP) and start again",
            ) from None
        if not isinstance(data, dict):
            raise StateError(f"the MPPS step file {self.path} is not an object",
                             f"delete {self.path}")  # fmt: skip
        return data

    def get(self, accession: str) -> StepRecord | None:
        raw = self._read().get(accession)
        if raw is None:
            return None
        try:
            return StepRecord(**raw)
        except TypeError:
            raise StateError(f"the MPPS step file {self.path} has a bad entry for {accession}",
                             f"delete {self.path}") from None  # fmt: skip

    def put(self, rec: StepRecord) -> None:
        data = self._read()
        data[rec.accession] = asdict(rec)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=2))


def _now() -> tuple[str, str]:
    now = _dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _check(status: Any, what: str, peer: Peer) -> None:
    code = int(status.Status) if status is not None and "Status" in status else None
    if status_category(code) in ("success", "warning"):
        return
    comment = str(status.get("ErrorComment", "") or "") if status is not None else ""
    name = NAMES.get(code or 0) or status_name(code)
    shown = "no response (association lost)" if code is None else f"0x{code:04X} {name}"
    raise DimseFailure(
        f"{what} to {peer} failed: {shown}" + (f": {comment}" if comment else ""),
        "see the MPPS SCP's log (dicomkit logs pacs, or dicomkit logs mpps beside Orthanc)",
        status=code,
        error_comment=comment,
    )


def create_attributes(item: dict[str, str], station_aet: str, sps_id: str = "") -> Dataset:
    """The N-CREATE attribute list of PS3.4 Table F.7.2-1 from a worklist answer
    (``answer_to_dict``): what the modality copies from the worklist, and its own start."""
    from pydicom.dataset import Dataset

    from dicomkit.dicom import vr

    date, time = _now()
    ds = Dataset()
    if vr.needs_utf8(item["patient_name"], item["requested_procedure_description"]):
        ds.SpecificCharacterSet = "ISO_IR 192"
    step = Dataset()  # Scheduled Step Attributes Sequence: Type 1, one item per SPS performed
    step.StudyInstanceUID = item["study_instance_uid"]  # Type 1
    step.ReferencedStudySequence = []
    step.AccessionNumber = item["accession"]
    step.RequestedProcedureID = item["requested_procedure_id"]
    step.RequestedProcedureDescription = item["requested_procedure_description"]
    step.ScheduledProcedureStepID = item["sps_id"]
    step.ScheduledProcedureStepDescription = item["sps_description"]
    step.ScheduledProtocolCodeSequence = []
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = item["patient_name"]  # Type 2 (the rest of the patient too)
    ds.PatientID = item["patient_id"]
    ds.PatientBirthDate = item["birth_date"]
    ds.PatientSex = item["sex"]
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = sps_id or f"PPS{secrets.token_hex(6).upper()}"  # Type 1, SH
    ds.PerformedStationAETitle = station_aet  # Type 1
    ds.PerformedStationName = ""
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = date  # Type 1
    ds.PerformedProcedureStepStartTime = time  # Type 1
    ds.PerformedProcedureStepStatus = "IN PROGRESS"  # Type 1, and only this at N-CREATE
    ds.PerformedProcedureStepDescription = item["sps_description"]
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""  # Type 2 at N-CREATE, set by the final N-SET
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = item["modality"]  # Type 1
    ds.StudyID = ""
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def start_step(
    mpps_peer: Peer, mwl_peer: Peer, calling_aet: str, accession: str, book: StepBook,
    timeout: float = 10.0,
) -> StepRecord:  # fmt: skip
    """Find the accession's worklist item (MWL C-FIND), N-CREATE its step IN PROGRESS,
    remember the step's SOP Instance UID."""
    from pydicom.uid import generate_uid
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    old = book.get(accession)
    if old is not None and old.state == "IN PROGRESS":
        raise UsageError(
            f"a step for {accession} is already IN PROGRESS ({old.sop_instance_uid})",
            f"end it first: dicomkit mpps complete --accession {accession} (or discontinue)",
        )
    matches = find_worklist(mwl_peer, calling_aet, WorklistQuery(accession=accession), timeout)
    if not matches:
        raise UsageError(
            f"no worklist item for accession {accession}",
            "place the order first (dicomkit order create), or check it with "
            f"dicomkit worklist find --accession {accession}; a completed step has left it",
        )
    item = matches[0]
    attrs = create_attributes(item, calling_aet)
    uid = str(generate_uid())
    with association(
        mpps_peer, calling_aet, [build_context(MPPS)], timeout=timeout, what="MPPS"
    ) as assoc:
        status, _ = assoc.send_n_create(attrs, MPPS, uid)
    _check(status, "MPPS N-CREATE", mpps_peer)
    date, time = _now()
    rec = StepRecord(accession, uid, "IN PROGRESS", item["study_instance_uid"], str(mpps_peer),
                     f"{date}{time}")  # fmt: skip
    book.put(rec)
    return rec


def performed_series(pacs: Peer, calling_aet: str, study_uid: str, timeout: float) -> list[Any]:
    """Performed Series Sequence items (PS3.4 Table F.7.2-1) for what the PACS holds of the
    study: Study Root C-FIND at SERIES, then IMAGE level for each series."""
    from pydicom.dataset import Dataset
    from pynetdicom.presentation import build_context

    def find(level: str, **keys: str) -> list[Dataset]:
        q = Dataset()
        q.QueryRetrieveLevel = level
        q.StudyInstanceUID = study_uid
        for k, v in keys.items():
            setattr(q, k, v)
        out = []
        for status, ds in assoc.send_c_find(q, STUDY_ROOT_FIND):
            code = int(status.Status) if status is not None and "Status" in status else None
            if status_category(code) == "pending" and ds is not None:
                out.append(ds)
            elif status_category(code) != "success":
                raise DimseFailure(f"C-FIND of the study's {level.lower()}s at {pacs} failed: "
                                   f"{status_name(code, 'find')}", "see the PACS log")  # fmt: skip
        return out

    items = []
    with association(
        pacs, calling_aet, [build_context(STUDY_ROOT_FIND)], timeout=timeout, what="study"
    ) as assoc:
        for series in find("SERIES", SeriesInstanceUID="", SeriesDescription="", Modality=""):
            uid = str(series.get("SeriesInstanceUID", "") or "")
            if not uid:
                continue
            item = Dataset()
            item.SeriesInstanceUID = uid  # Type 1
            item.SeriesDescription = str(series.get("SeriesDescription", "") or "")
            item.ProtocolName = item.SeriesDescription or "dicomkit"  # Type 1
            item.PerformingPhysicianName = ""
            item.OperatorsName = ""
            item.RetrieveAETitle = pacs.aet
            refs = []
            for image in find("IMAGE", SeriesInstanceUID=uid, SOPInstanceUID="", SOPClassUID=""):
                ref = Dataset()
                ref.ReferencedSOPClassUID = str(image.get("SOPClassUID", "") or "")
                ref.ReferencedSOPInstanceUID = str(image.get("SOPInstanceUID", "") or "")
                refs.append(ref)
            item.ReferencedImageSequence = refs  # Type 2
            item.ReferencedNonImageCompositeSOPInstanceSequence = []
            items.append(item)
    return items


def end_step(
    mpps_peer: Peer, pacs: Peer, calling_aet: str, accession: str, state: str,
    book: StepBook, timeout: float = 10.0,
) -> tuple[StepRecord, int]:  # fmt: skip
    """The final N-SET (PS3.4 F.7.2.2): COMPLETED with the series the PACS holds of the study
    (there must be one), or DISCONTINUED (with whatever it holds). Returns the step and the
    number of series reported."""
    from pydicom.dataset import Dataset
    from pynetdicom.presentation import build_context

    rec = book.get(accession)
    if rec is None:
        raise UsageError(
            f"no MPPS step was started for {accession} from this lab's home",
            f"start one first: dicomkit mpps start --accession {accession}",
        )
    series = performed_series(pacs, calling_aet, rec.study_instance_uid, timeout)
    if state == "COMPLETED" and not series:
        raise UsageError(
            f"the PACS holds no image of study {rec.study_instance_uid} ({accession})",
            "a COMPLETED step lists its series (PS3.4 F.7.2.2): acquire and store first "
            f"(dicomkit make-image --accession {accession}, dicomkit store), or discontinue",
        )
    date, time = _now()
    mods = Dataset()
    mods.PerformedProcedureStepStatus = state
    mods.PerformedProcedureStepEndDate = date  # Final State: Type 1
    mods.PerformedProcedureStepEndTime = time
    mods.PerformedSeriesSequence = series
    with association(
        mpps_peer, calling_aet, [build_context(MPPS)], timeout=timeout, what="MPPS"
    ) as assoc:
        status, _ = assoc.send_n_set(mods, MPPS, rec.sop_instance_uid)
    _check(status, "MPPS N-SET", mpps_peer)
    rec.state, rec.ended = state, f"{date}{time}"
    book.put(rec)
    return rec, len(series)
