"""Lesson 14, the capstone: the learner runs the IHE Scheduled Workflow for one new patient, each
step with the tools of lessons 2-12: the HIS's order over HL7 (RAD-2), the worklist query
(RAD-5), MPPS IN PROGRESS (RAD-6), the image made from the item and stored (RAD-8), MPPS
COMPLETED (RAD-7) and storage commitment (RAD-10). The tutor watches each step, then shows the
timeline the lab's own records make of it (`dicomkit timeline`)."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from dicomkit import ui
from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.steps.lesson04_acquire_an_image import make_from_worklist
from dicomkit.tutor.steps.lesson09_orders_arrive_as_hl7 import orm
from dicomkit.tutor.steps.lesson10_the_modality_reports_mpps import ris_order
from dicomkit.tutor.steps.lesson12_storage_commitment import commit_instances, commitment_seen
from dicomkit.tutor.watch_lab import (
    clear_answers,
    lab_saw,
    matched,
    sop_in_pacs,
    watch_from_now,
    workdir,
)

LESSON = 14
PATIENT = "TUTOR^MARIE"  # synthetic: never a real patient in a lab
# The transactions a whole run leaves in the timeline, in the order the workflow makes them.
EXPECTED = ("RAD-2", "RAD-6", "RAD-8", "RAD-7", "RAD-10")


def _accession(ctx: LabContext) -> str:
    return str(ctx.need("task_accession", LESSON, own=True))


def _folder(ctx: LabContext, name: str) -> Path:
    return workdir(ctx, f"lesson-14-{name}")


# ---- 1. the HIS's order (RAD-2) -------------------------------------------------------------
def _prepare_order(ctx: LabContext) -> Values:
    # One new patient and accession per run of the workflow, saved before use.
    outcomes = ctx.progress.outcomes(LESSON)
    accession = outcomes.get("task_accession")
    if not accession or outcomes.get("swf_accession") == accession:
        accession = ctx.progress.next_accession()
        ctx.record(task_accession=accession)
    path = _folder(ctx, "order") / "orm.hl7"
    text = orm(str(accession), f"MSG-{accession}").replace("TUTOR^GRACE", PATIENT)
    path.write_text(text, encoding="utf-8")
    return {"accession": str(accession), "hl7_file": str(path)}


def _show_me_order(ctx: LabContext, values: Values) -> None:
    from dicomkit.ris.mllp_client import send_messages, split_messages

    text = Path(values["hl7_file"]).read_text(encoding="utf-8")
    send_messages(ctx.endpoints.host, ctx.endpoints.hl7_port,
                  [m.encode("utf-8") for m in split_messages(text)], ctx.cfg.timeout)  # fmt: skip


@task("swf-order", _prepare_order, _show_me_order)
def swf_order(ctx: LabContext, values: Values) -> Seen | None:
    from dicomkit.ris.client import RisClient

    accession = values["accession"]
    order = ris_order(ctx, accession)
    if order is None:
        journal = RisClient(ctx.endpoints.ris_url, timeout=ctx.cfg.timeout).hl7_messages()
        refused = [m for m in journal if m.get("accession") == accession and m["ack"] != "AA"]
        if refused:
            return Seen(False, f"your {refused[-1]['message_type']} answered "
                        f"{refused[-1]['ack']}: {refused[-1]['text']}")  # fmt: skip
        return None
    return Seen(True, f"order {accession} for {order['order']['patient_name']} in the RIS, "
                f"worklist item {order['worklist_item_id']} for {order['station_aet']}")  # fmt: skip


# ---- 2. the worklist query (RAD-5) ----------------------------------------------------------
def _prepare_worklist(ctx: LabContext) -> Values:
    return {"accession": _accession(ctx), **watch_from_now(ctx)}


def _show_me_worklist(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    find_worklist(ctx.mwl, ctx.aet, WorklistQuery(accession=values["accession"]), ctx.cfg.timeout)


@task("swf-worklist", _prepare_worklist, _show_me_worklist, needs="events")
def swf_worklist(ctx: LabContext, values: Values) -> Seen | None:
    """The worklist C-FIND the MWL SCP saw from the learner, naming the accession."""
    accession = values["accession"]
    finds = lab_saw(ctx, values, "mwl-find")
    if not finds:
        return None
    e = finds[-1]
    named = dict(e.get("keys") or {}).get("AccessionNumber")
    if named != accession:
        return Seen(False, f"your C-FIND from {e.calling} asked for accession "
                    f"{named or '(any)'}, not {accession}: match on AccessionNumber")  # fmt: skip
    if e.get("matches") == 0:
        return Seen(False, f"your C-FIND from {e.calling} for {accession} {matched(e)}")
    return Seen(True, f"your C-FIND from {e.calling} for accession {accession} {matched(e)}")


# ---- 3. and 6. the procedure step (RAD-6, RAD-7) --------------------------------------------
def _accession_values(ctx: LabContext) -> Values:
    return {"accession": _accession(ctx)}


def _mpps_peer(ctx: LabContext) -> Any:
    from dicomkit.dicom.net import Peer

    return Peer(ctx.endpoints.host, ctx.endpoints.mpps_port, ctx.endpoints.mpps_aet)


def _show_me_start(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.mpps import StepBook, start_step

    start_step(_mpps_peer(ctx), ctx.mwl, ctx.aet, values["accession"],
               StepBook(ctx.cfg.mpps_steps_file), ctx.cfg.timeout)  # fmt: skip


def _status(ctx: LabContext, accession: str) -> str:
    order = ris_order(ctx, accession)
    if order is None:
        raise DicomkitError(f"no order {accession} in the RIS any more",
                            "rerun `dicomkit lesson 14` for a new order")  # fmt: skip
    return str(order.get("status") or "SCHEDULED")


def _step_seen(ctx: LabContext, accession: str, before: str, after: str) -> Seen | None:
    """The order's status while the learner moves it from ``before`` to ``after``."""
    status = _status(ctx, accession)
    if status == before:
        return None
    if status != after:
        return Seen(False, f"order {accession} is {status}: rerun `dicomkit lesson 14`")
    how = "N-CREATE" if after == "IN PROGRESS" else "N-SET"
    return Seen(True, f"order {accession} {after} in the RIS: the MPPS SCP took your {how} and "
                "told it")  # fmt: skip


@task("swf-start", _accession_values, _show_me_start)
def swf_start(ctx: LabContext, values: Values) -> Seen | None:
    return _step_seen(ctx, values["accession"], "SCHEDULED", "IN PROGRESS")


def _show_me_complete(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.mpps import StepBook, end_step

    end_step(_mpps_peer(ctx), ctx.pacs, ctx.aet, values["accession"], "COMPLETED",
             StepBook(ctx.cfg.mpps_steps_file), ctx.cfg.timeout)  # fmt: skip


@task("swf-complete", _accession_values, _show_me_complete)
def swf_complete(ctx: LabContext, values: Values) -> Seen | None:
    return _step_seen(ctx, values["accession"], "IN PROGRESS", "COMPLETED")


# ---- 4. and 5. the image (RAD-8) ------------------------------------------------------------
def _prepare_acquire(ctx: LabContext) -> Values:
    accession = _accession(ctx)
    return {"accession": accession, "image": str(_folder(ctx, "image") / f"{accession}.dcm")}


def _show_me_acquire(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.image import save_image

    save_image(make_from_worklist(ctx, values["accession"]), Path(values["image"]))


def _image(path: Path) -> Any:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        return dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError):
        return None


@task("swf-acquire", _prepare_acquire, _show_me_acquire)
def swf_acquire(ctx: LabContext, values: Values) -> Seen | None:
    path = Path(values["image"])
    if not path.is_file():
        return None
    ds = _image(path)
    if ds is None:
        return Seen(False, f"{path.name} is not (yet) a whole DICOM file")
    if str(ds.get("AccessionNumber", "")) != values["accession"]:
        return Seen(False, f"{path.name} carries accession {ds.get('AccessionNumber', '')!s}, "
                    f"not {values['accession']}: make it from the worklist item")  # fmt: skip
    return Seen(True, f"{path.name}: accession {ds.AccessionNumber}, patient {ds.PatientName}, "
                "made from the worklist item", {"swf_image": str(path),
                "swf_sop_instance_uid": str(ds.SOPInstanceUID)})  # fmt: skip


def _prepare_store(ctx: LabContext) -> Values:
    path = Path(str(ctx.need("swf_image", LESSON, own=True)))
    if not path.is_file():
        raise DicomkitError(f"the image {path} is gone", "rerun `dicomkit lesson 14`")
    return {"accession": _accession(ctx), "image": str(path)}


def _show_me_store(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.scu import store_files

    report = store_files(ctx.pacs, ctx.aet, [Path(values["image"])], timeout=ctx.cfg.timeout)
    if report.failed:
        first = report.failed[0]
        raise DicomkitError(f"the PACS did not store the image: {first.error or first.status_name}",
                            "see `dicomkit logs pacs`")  # fmt: skip


@task("swf-store", _prepare_store, _show_me_store)
def swf_store(ctx: LabContext, values: Values) -> Seen | None:
    sop = str(ctx.need("swf_sop_instance_uid", LESSON, own=True))
    if not sop_in_pacs(ctx, sop):
        return None
    return Seen(True, f"the PACS stored SOP Instance {sop} (asked its REST API)")


# ---- 7. storage commitment (RAD-10) ---------------------------------------------------------
def _prepare_commit(ctx: LabContext) -> Values:
    folder = _folder(ctx, "commit")
    clear_answers(folder)
    return {"accession": _accession(ctx), "workdir": str(folder)}


def _show_me_commit(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.commit import accession_instances
    from dicomkit.fsutil import atomic_write_text

    instances = accession_instances(ctx.pacs, ctx.aet, values["accession"], ctx.cfg.timeout)
    report = commit_instances(ctx, instances)
    atomic_write_text(Path(values["workdir"]) / "commit.json",
                      json.dumps(report.to_dict(), indent=2))  # fmt: skip


@task("swf-commit", _prepare_commit, _show_me_commit)
def swf_commit(ctx: LabContext, values: Values) -> Seen | None:
    seen, _ = commitment_seen(Path(values["workdir"]), values["accession"])
    if seen is None or not seen.ok:
        return seen
    return replace(seen, outcomes={"swf_accession": values["accession"]})


# ---- the timeline ---------------------------------------------------------------------------
def timeline_of(ctx: LabContext, accession: str) -> Any:
    from dicomkit.timeline.sources import collect

    return collect(ctx.cfg, ctx.endpoints, ctx.engine, accession)


def missing(timeline: Any) -> list[str]:
    """The transactions of a whole run the timeline lacks, or has out of the workflow's order."""
    seen = [r.transaction.split(" ")[0] for r in timeline.rows]
    firsts = [t for i, t in enumerate(seen) if t in EXPECTED and t not in seen[:i]]
    absent = [t for t in EXPECTED if t not in seen]
    if absent:
        return absent
    return [] if firsts == list(EXPECTED) else [f"order {' '.join(firsts)}"]


@action("show_timeline")
def show_timeline(ctx: LabContext) -> None:
    from dicomkit.timeline.rows import COLUMNS, legend, table_rows, title

    accession = str(ctx.need("swf_accession", LESSON, own=True))
    tl = timeline_of(ctx, accession)
    ctx.out.show(ui.table(title(tl), COLUMNS, table_rows(tl)))
    ctx.out.show(f"[muted]{ui.escape(legend(tl))}[/muted]")
    for line in tl.unseen:
        ctx.out.show(f"[muted]Not seen: {ui.escape(line)}[/muted]")
    ctx.out.equivalent(f"dicomkit timeline --accession {shlex.quote(accession)}",
                       "The same timeline, any time")  # fmt: skip
