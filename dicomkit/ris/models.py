"""The order as the RIS accepts it, validated against DICOM VR rules field by field."""

from __future__ import annotations

import datetime as _dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dicomkit.dicom import vr

# Accession and patient ID travel into other systems' keys and file names, so we keep them
# to printable ASCII (PS3.5 default repertoire); names and descriptions may be any Unicode
# and are then written with SpecificCharacterSet ISO_IR 192.


class OrderIn(BaseModel):
    """A radiology order: the JSON of the classic tutorial plus optional scheduling details."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    patient_id: Annotated[str, Field(description="Patient ID (LO, 64, ASCII)", examples=["P123"])]
    patient_name: Annotated[
        str, Field(description="Patient name (PN), family^given", examples=["DOE^JANE"])
    ]
    accession: Annotated[
        str, Field(description="Accession number (SH, 16, ASCII)", examples=["ACC-1001"])
    ]
    modality: Annotated[str, Field(description="Modality (CS), e.g. CR, CT, MR", examples=["CR"])]
    study_desc: Annotated[
        str, Field(description="Requested procedure description (LO, 64)", examples=["XR CHEST"])
    ] = ""
    birth_date: Annotated[str | None, Field(description="YYYYMMDD (DA)")] = None
    sex: Annotated[str | None, Field(description="M, F or O (CS)")] = None
    scheduled_date: Annotated[str | None, Field(description="YYYYMMDD; default today")] = None
    scheduled_time: Annotated[str | None, Field(description="HHMM[SS]; default now")] = None
    station_aet: Annotated[
        str | None, Field(description="Scheduled Station AE Title (AE); default the lab's modality")
    ] = None
    referring_physician: Annotated[str | None, Field(description="Referring physician (PN)")] = None
    procedure_code: Annotated[str | None, Field(description="Requested procedure code (SH)")] = None

    @field_validator("patient_id")
    @classmethod
    def _patient_id(cls, v: str) -> str:
        return vr.check_lo(v, ascii_only=True, required=True)

    @field_validator("accession")
    @classmethod
    def _accession(cls, v: str) -> str:
        return vr.check_sh(v, ascii_only=True, required=True)

    @field_validator("patient_name")
    @classmethod
    def _patient_name(cls, v: str) -> str:
        return vr.check_pn(v)

    @field_validator("referring_physician")
    @classmethod
    def _referring(cls, v: str | None) -> str | None:
        return None if v is None or v.strip() == "" else vr.check_pn(v)

    @field_validator("modality")
    @classmethod
    def _modality(cls, v: str) -> str:
        return vr.check_modality(v)

    @field_validator("study_desc")
    @classmethod
    def _desc(cls, v: str) -> str:
        return vr.check_lo(v)

    @field_validator("birth_date", "scheduled_date")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        return None if v is None or v == "" else vr.check_da(v)

    @field_validator("scheduled_time")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        return None if v is None or v == "" else vr.check_tm(v)

    @field_validator("sex")
    @classmethod
    def _sex(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        return vr.check_cs(v, allowed=frozenset({"M", "F", "O"}))

    @field_validator("station_aet")
    @classmethod
    def _station(cls, v: str | None) -> str | None:
        return None if v is None or v == "" else vr.check_ae(v)

    @field_validator("procedure_code")
    @classmethod
    def _code(cls, v: str | None) -> str | None:
        return None if v is None or v == "" else vr.check_sh(v, ascii_only=True)

    def scheduled(self, now: _dt.datetime | None = None) -> tuple[str, str]:
        now = now or _dt.datetime.now()
        return (
            self.scheduled_date or now.strftime("%Y%m%d"),
            self.scheduled_time or now.strftime("%H%M%S"),
        )


class OrderOut(BaseModel):
    """An order as stored, with the identifiers the RIS assigned."""

    order: OrderIn
    worklist_item_id: str
    study_instance_uid: str
    requested_procedure_id: str
    scheduled_procedure_step_id: str
    scheduled_date: str
    scheduled_time: str
    station_aet: str
    created: str
    # The procedure step's state as the MPPS SCP reports it (IHE RAD-6/RAD-7): SCHEDULED until
    # the modality's N-CREATE, then IN PROGRESS, then COMPLETED or DISCONTINUED.
    status: str = "SCHEDULED"
    mpps_sop_instance_uid: str = ""
    status_updated: str = ""

    @property
    def closed(self) -> bool:
        """COMPLETED or DISCONTINUED: the order has left the worklist."""
        return self.status in ("COMPLETED", "DISCONTINUED")

    def summary(self) -> dict[str, Any]:
        d = self.order.model_dump()
        d.update(self.model_dump(exclude={"order"}))
        return d


class StatusIn(BaseModel):
    """A procedure step's new state, from the MPPS SCP (PS3.3 C.4.14 Performed Procedure Step
    Status), with the MPPS SOP Instance UID and the Study Instance UID it names."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["IN PROGRESS", "COMPLETED", "DISCONTINUED"]
    mpps_sop_instance_uid: Annotated[str, Field(max_length=64)] = ""
    study_instance_uid: Annotated[str, Field(max_length=64)] = ""
    # When the MPPS SCP received the N-CREATE/N-SET (ISO 8601) and from which AE: the order's
    # events keep them, since the RIS may be told later than it happened (a retry).
    received: Annotated[str, Field(max_length=40)] = ""
    calling_aet: Annotated[str, Field(max_length=16)] = ""
