"""Modality Worklist items: build them from orders, write them as ``.wl`` files, read answers.

A worklist item carries every Type 1 return key of PS3.4 Table K.6-1 and the Type 2 keys as
present-but-possibly-empty, so any MWL SCP (Orthanc, DCMTK wlmscpfs, our embedded one) can
answer from it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.dicom import vr
from dicomkit.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from dicomkit.ris.models import OrderOut

WL_SUFFIX = ".wl"
# UID root for dicomkit-generated UIDs: pydicom's generate_uid() default root is shared by
# everyone using pydicom, which is fine for a lab; ours are random (UUID-derived) anyway.
MWL_FIND_SOP_CLASS = "1.2.840.10008.5.1.4.31"  # Modality Worklist Information Model - FIND


def new_item_id() -> str:
    """A worklist item's file stem: random, never derived from anything a client sent."""
    return uuid.uuid4().hex


def item_path(folder: Path, item_id: str) -> Path:
    if len(item_id) != 32 or not all(c in "0123456789abcdef" for c in item_id):
        raise ValueError(f"not a worklist item id: {item_id!r}")
    return folder / f"{item_id}{WL_SUFFIX}"


def build_item(order: OrderOut) -> Dataset:
    """The worklist item of an order, as a DICOM dataset with file meta."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

    o = order.order
    ds = Dataset()
    if vr.needs_utf8(o.patient_name, o.study_desc, o.referring_physician):
        ds.SpecificCharacterSet = "ISO_IR 192"
    # Patient (PS3.4 K.6-1: Patient Identification / Demographic)
    ds.PatientName = o.patient_name
    ds.PatientID = o.patient_id
    ds.PatientBirthDate = o.birth_date or ""
    ds.PatientSex = o.sex or ""
    # Imaging Service Request / Requested Procedure
    ds.AccessionNumber = o.accession
    ds.ReferringPhysicianName = o.referring_physician or ""
    ds.RequestedProcedureID = order.requested_procedure_id  # Type 1
    # Type 1C; DCMTK wlmscpfs wants it non-empty, so fall back to the procedure code's meaning.
    ds.RequestedProcedureDescription = o.study_desc or f"{o.modality} procedure"
    ds.StudyInstanceUID = order.study_instance_uid  # Type 1
    ds.StudyDescription = o.study_desc
    ds.RequestedProcedurePriority = ""
    code = Dataset()
    code.CodeValue = o.procedure_code or o.modality
    code.CodingSchemeDesignator = "DICOMKIT"  # a local coding scheme
    code.CodeMeaning = (o.study_desc or o.modality)[:64]
    ds.RequestedProcedureCodeSequence = [code]
    # Scheduled Procedure Step (Type 1 sequence with exactly one item here)
    sps = Dataset()
    sps.Modality = o.modality  # Type 1
    sps.ScheduledStationAETitle = order.station_aet  # Type 1
    sps.ScheduledProcedureStepStartDate = order.scheduled_date  # Type 1
    sps.ScheduledProcedureStepStartTime = order.scheduled_time  # Type 1
    sps.ScheduledPerformingPhysicianName = ""  # Type 2
    sps.ScheduledProcedureStepDescription = o.study_desc or f"{o.modality} procedure"  # 1C
    sps.ScheduledProcedureStepID = order.scheduled_procedure_step_id  # Type 1
    sps.ScheduledStationName = ""
    sps.ScheduledProcedureStepLocation = ""
    sps.ScheduledProcedureStepStatus = "SCHEDULED"
    # Satisfies the SPS Description's 1C condition even when the order has no description
    # (DCMTK wlmscpfs ignores items that have neither).
    protocol = Dataset()
    protocol.CodeValue = code.CodeValue
    protocol.CodingSchemeDesignator = code.CodingSchemeDesignator
    protocol.CodeMeaning = code.CodeMeaning
    sps.ScheduledProtocolCodeSequence = [protocol]
    ds.ScheduledProcedureStepSequence = [sps]

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(MWL_FIND_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def encode(ds: Dataset) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_item(folder: Path, item_id: str, ds: Dataset) -> Path:
    """Write atomically: readers (Orthanc re-reads the folder per query) never see half a file."""
    path = item_path(folder, item_id)
    atomic_write_bytes(path, encode(ds))
    return path


def read_item(path: Path) -> Dataset:
    from pydicom import dcmread

    return dcmread(path)


# ---- querying --------------------------------------------------------------------------


@dataclass
class WorklistQuery:
    """Matching keys for an MWL C-FIND. Empty means universal match (return key only)."""

    accession: str = ""
    patient_id: str = ""
    patient_name: str = ""
    modality: str = ""
    date: str = ""  # YYYYMMDD, or a range A-B / A- / -B
    station_aet: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def matching_keys(self) -> dict[str, str]:
        keys = {
            "AccessionNumber": self.accession,
            "PatientID": self.patient_id,
            "PatientName": self.patient_name,
            "Modality": self.modality,
            "ScheduledProcedureStepStartDate": self.date,
            "ScheduledStationAETitle": self.station_aet,
        }
        return {k: v for k, v in keys.items() if v}

    def identifier(self) -> Dataset:
        from pydicom.dataset import Dataset

        ds = Dataset()
        # Always ask for UTF-8: an SCP answers in the query's character set where it can
        # (Orthanc otherwise falls back to its DefaultEncoding, Latin-1, and drops 山田).
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.AccessionNumber = self.accession
        ds.ReferringPhysicianName = ""
        ds.RequestedProcedureID = ""
        ds.RequestedProcedureDescription = ""
        ds.StudyInstanceUID = ""
        sps = Dataset()
        sps.Modality = self.modality
        sps.ScheduledStationAETitle = self.station_aet
        sps.ScheduledProcedureStepStartDate = self.date
        sps.ScheduledProcedureStepStartTime = ""
        sps.ScheduledProcedureStepDescription = ""
        sps.ScheduledProcedureStepID = ""
        sps.ScheduledPerformingPhysicianName = ""
        ds.ScheduledProcedureStepSequence = [sps]
        for k, v in self.extra.items():
            setattr(ds, k, v)
        return ds

    def findscu_args(self) -> list[str]:
        """The same query as DCMTK ``findscu -W -k`` arguments."""
        sq = "ScheduledProcedureStepSequence[0]"
        args = [
            f"PatientName={self.patient_name}",
            f"PatientID={self.patient_id}",
            f"AccessionNumber={self.accession}",
            "StudyInstanceUID=",
            f"{sq}.Modality={self.modality}",
            f"{sq}.ScheduledStationAETitle={self.station_aet}",
            f"{sq}.ScheduledProcedureStepStartDate={self.date}",
        ]
        out: list[str] = []
        for a in args:
            out += ["-k", a]
        return out


def _s(ds: Dataset, key: str) -> str:
    value = ds.get(key, "")
    return "" if value is None else str(value)


def answer_to_dict(ds: Dataset) -> dict[str, str]:
    sps_seq = ds.get("ScheduledProcedureStepSequence") or []
    sps = sps_seq[0] if len(sps_seq) else None
    row = {
        "accession": _s(ds, "AccessionNumber"),
        "patient_id": _s(ds, "PatientID"),
        "patient_name": _s(ds, "PatientName"),
        "birth_date": _s(ds, "PatientBirthDate"),
        "sex": _s(ds, "PatientSex"),
        "study_instance_uid": _s(ds, "StudyInstanceUID"),
        "requested_procedure_id": _s(ds, "RequestedProcedureID"),
        "requested_procedure_description": _s(ds, "RequestedProcedureDescription"),
        "referring_physician": _s(ds, "ReferringPhysicianName"),
        "modality": "",
        "station_aet": "",
        "scheduled_date": "",
        "scheduled_time": "",
        "sps_id": "",
        "sps_description": "",
    }
    if sps is not None:
        row.update(
            modality=_s(sps, "Modality"),
            station_aet=_s(sps, "ScheduledStationAETitle"),
            scheduled_date=_s(sps, "ScheduledProcedureStepStartDate"),
            scheduled_time=_s(sps, "ScheduledProcedureStepStartTime"),
            sps_id=_s(sps, "ScheduledProcedureStepID"),
            sps_description=_s(sps, "ScheduledProcedureStepDescription"),
        )
    return row
