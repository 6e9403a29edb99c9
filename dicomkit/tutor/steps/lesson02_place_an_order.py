"""Lesson 2, place an order: the learner places it (dicomkit order create or curl); the tutor
watches the RIS API for it, then shows the worklist item the RIS wrote (PS3.4 Table K.6-1)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit import ui
from dicomkit.errors import DicomkitError, RisError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.show import ok_mark, tag

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# Synthetic patients only: names no real person is registered under.
SYNTHETIC_PATIENTS = ("TUTOR^ADA", "TUTOR^GRACE", "TUTOR^ALAN", "TUTOR^EDSGER")
STUDY_DESC = "XR CHEST PA"
WANT = {"sex": "F", "birth_year": "1970", "modality": "CR"}  # the goal lesson 2 states


def _prepare(ctx: LabContext) -> Values:
    # One accession per try, saved before use, so a rerun never collides (409) with an old one.
    accession = ctx.progress.outcomes(2).get("task_accession")
    if not accession or ctx.progress.outcomes(2).get("accession") == accession:
        accession = ctx.progress.next_accession()
        ctx.record(task_accession=accession)
    # A synthetic birth date in the year the goal names (the content holds no literal date).
    return {"accession": str(accession), "birth_date": f"{WANT['birth_year']}0101"}


def _recorded(order: dict[str, Any]) -> dict[str, Any]:
    o = order["order"]
    return {
        "accession": o["accession"],
        "patient_id": o["patient_id"],
        "patient_name": o["patient_name"],
        "study_instance_uid": order["study_instance_uid"],
        "worklist_item_id": order["worklist_item_id"],
        "scheduled_date": order["scheduled_date"],
    }


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.ris.client import RisClient

    accession = values["accession"]
    name = SYNTHETIC_PATIENTS[int(ctx.progress.learner, 16) % len(SYNTHETIC_PATIENTS)]
    body = {
        "patient_id": f"{accession}-PID",
        "patient_name": name,
        "accession": accession,
        "modality": WANT["modality"],
        "study_desc": STUDY_DESC,
        "sex": WANT["sex"],
        "birth_date": values["birth_date"],
        "station_aet": ctx.aet,
    }
    RisClient(ctx.endpoints.ris_url, timeout=ctx.cfg.timeout).create_order(body)
    ctx.out.equivalent(
        f"curl -sS -X POST {ctx.endpoints.ris_url}/orders -H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(body))}",
        "The same with curl",
    )


@task("place-order", _prepare, _show_me)
def place_order(ctx: LabContext, values: Values) -> Seen | None:
    from dicomkit.ris.client import RisClient

    accession = values["accession"]
    try:
        order = RisClient(ctx.endpoints.ris_url, timeout=ctx.cfg.timeout).get_order(accession)
    except RisError as exc:
        if exc.status == 404:
            return None
        raise
    o = order["order"]
    wrong = []
    if (o.get("sex") or "") != WANT["sex"]:
        wrong.append(f"sex {o.get('sex') or 'empty'} (the goal: F)")
    if not str(o.get("birth_date") or "").startswith(WANT["birth_year"]):
        wrong.append(f"birth date {o.get('birth_date') or 'empty'} (the goal: born 1970)")
    if o.get("modality") != WANT["modality"]:
        wrong.append(f"modality {o.get('modality')} (the goal: CR)")
    if order.get("station_aet") != ctx.aet:
        wrong.append(f"station {order.get('station_aet')} (the goal: {ctx.aet})")
    what = f"order {accession} for {o['patient_name']} in the RIS"
    if wrong:
        return Seen(False, f"{what}, but: {'; '.join(wrong)}. Cancel it with `dicomkit order "
                    f"cancel {accession}` and place it again")  # fmt: skip
    seen = (f"{what}: {o['sex']}, born {o['birth_date']}, {o['modality']} {o['study_desc']}, "
            f"scheduled {order['scheduled_date']} for {order['station_aet']}")  # fmt: skip
    return Seen(True, seen, _recorded(order))


# PS3.4 Table K.6-1: return keys of a worklist item and their return key type.
MWL_RETURN_KEYS: tuple[tuple[str, str], ...] = (
    ("PatientName", "1"),
    ("PatientID", "1"),
    ("PatientBirthDate", "2"),
    ("PatientSex", "2"),
    ("AccessionNumber", "2"),
    ("ReferringPhysicianName", "2"),
    ("RequestedProcedureID", "1"),
    ("RequestedProcedureDescription", "1C"),
    ("StudyInstanceUID", "1"),
    ("ScheduledProcedureStepSequence", "1"),
)
SPS_RETURN_KEYS: tuple[tuple[str, str], ...] = (
    ("Modality", "1"),
    ("ScheduledStationAETitle", "1"),
    ("ScheduledProcedureStepStartDate", "1"),
    ("ScheduledProcedureStepStartTime", "1"),
    ("ScheduledProcedureStepID", "1"),
    ("ScheduledProcedureStepDescription", "1C"),
    ("ScheduledPerformingPhysicianName", "2"),
)


def missing_type1(ds: Dataset) -> list[str]:
    """Type 1 return keys (PS3.4 Table K.6-1) that are absent or empty in a worklist item."""
    out = [k for k, t in MWL_RETURN_KEYS if t == "1" and not ds.get(k)]
    seq = ds.get("ScheduledProcedureStepSequence") or []
    if seq:
        out += [f"ScheduledProcedureStepSequence>{k}" for k, t in SPS_RETURN_KEYS
                if t == "1" and not seq[0].get(k)]  # fmt: skip
    return out


def worklist_item(ctx: LabContext, accession: str) -> tuple[Dataset, str]:
    """The item as a file when this machine can read the folder, else as the MWL SCP serves it."""
    from dicomkit.dicom.worklist import item_path, read_item

    item_id = ctx.progress.find_outcome("worklist_item_id", prefer=2) or ""
    try:
        path = item_path(ctx.cfg.worklist_dir, str(item_id))
        if path.is_file():
            return read_item(path), str(path)
    except ValueError:
        pass
    from dicomkit.dicom.scu import find_worklist_datasets
    from dicomkit.dicom.worklist import WorklistQuery

    found = find_worklist_datasets(ctx.mwl, ctx.aet, WorklistQuery(accession=accession))
    if not found:
        raise DicomkitError(
            f"no worklist item for accession {accession}",
            "rerun `dicomkit lesson 2` to place the order again",
        )
    return found[0], f"MWL C-FIND answer from {ctx.mwl}"


@action("inspect_worklist_item")
def inspect_worklist_item(ctx: LabContext) -> None:
    accession = ctx.need("accession", 2)
    ds, where = worklist_item(ctx, accession)
    rows = []
    for keyword, typ in MWL_RETURN_KEYS:
        if keyword == "ScheduledProcedureStepSequence":
            continue
        value = str(ds.get(keyword, ""))
        rows.append([keyword, tag(keyword), typ, value, "✓" if value or typ != "1" else "✗"])
    seq = ds.get("ScheduledProcedureStepSequence") or []
    sps = seq[0] if seq else None
    for keyword, typ in SPS_RETURN_KEYS:
        value = str(sps.get(keyword, "")) if sps is not None else ""
        rows.append([f"  >{keyword}", tag(keyword), typ, value,
                     "✓" if value or typ != "1" else "✗"])  # fmt: skip
    missing = missing_type1(ds)
    ctx.out.show(
        ui.table(
            f"{ok_mark(not missing)} Worklist item for {accession} ({where})",
            ["attribute", "tag", "type", "value", ""],
            rows,
        )
    )
    if where.endswith(".wl"):
        meta = ds.file_meta
        size = Path(where).stat().st_size
        ctx.out.show(
            f"[muted]{size} bytes: 128-byte preamble, 'DICM', file meta (transfer syntax "
            f"{meta.TransferSyntaxUID.name}), then the data set (PS3.10 Section 7).[/muted]"
        )
        ctx.out.equivalent(f"dcmdump {shlex.quote(where)}", "Look inside")
