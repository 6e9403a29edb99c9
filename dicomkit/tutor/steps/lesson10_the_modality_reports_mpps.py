"""Lesson 10, the modality reports: MPPS. The tutor places an order; the learner starts its
procedure step (N-CREATE IN PROGRESS, IHE RAD-6), the tutor acquires and stores the image, the
learner completes the step (N-SET COMPLETED, RAD-7). The tutor watches the order's status in the
RIS and the worklist item leaving (PS3.4 Annex F)."""

from __future__ import annotations

import shlex
from typing import Any

from dicomkit import ui
from dicomkit.errors import DicomkitError, RisError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.watch_lab import workdir

PATIENT = "TUTOR^ALAN"  # synthetic: never a real patient in a lab


def ris_order(ctx: LabContext, accession: str) -> dict[str, Any] | None:
    """The order as the RIS has it, or None when it has none."""
    from dicomkit.ris.client import RisClient

    try:
        return RisClient(ctx.endpoints.ris_url, timeout=ctx.cfg.timeout).get_order(accession)
    except RisError as exc:
        if exc.status == 404:
            return None
        raise


def _prepare_start(ctx: LabContext) -> Values:
    from dicomkit.ris.client import RisClient

    # One accession per try, saved before use; its order placed once (a rerun reuses it).
    accession = ctx.progress.outcomes(10).get("task_accession")
    if not accession or ctx.progress.outcomes(10).get("mpps_accession") == accession:
        accession = ctx.progress.next_accession()
        ctx.record(task_accession=accession)
    accession = str(accession)
    if ris_order(ctx, accession) is None:
        RisClient(ctx.endpoints.ris_url, timeout=ctx.cfg.timeout).create_order({
            "patient_id": f"{accession}-PID", "patient_name": PATIENT, "accession": accession,
            "modality": "CR", "study_desc": "XR CHEST PA", "sex": "M",
            "birth_date": "19700101", "station_aet": ctx.aet,
        })  # fmt: skip
    return {"accession": accession}


def _prepare_complete(ctx: LabContext) -> Values:
    return {"accession": str(ctx.need("task_accession", 10, own=True))}


def _step_book(ctx: LabContext) -> Any:
    from dicomkit.dicom.mpps import StepBook

    return StepBook(ctx.cfg.mpps_steps_file)


def _mpps_peer(ctx: LabContext) -> Any:
    from dicomkit.dicom.net import Peer

    return Peer(ctx.endpoints.host, ctx.endpoints.mpps_port, ctx.endpoints.mpps_aet)


def _show_me_start(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.mpps import start_step

    start_step(_mpps_peer(ctx), ctx.mwl, ctx.aet, values["accession"], _step_book(ctx),
               ctx.cfg.timeout)  # fmt: skip


def _show_me_complete(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.mpps import end_step

    end_step(_mpps_peer(ctx), ctx.pacs, ctx.aet, values["accession"], "COMPLETED",
             _step_book(ctx), ctx.cfg.timeout)  # fmt: skip


def _status(order: dict[str, Any]) -> str:
    return str(order.get("status") or "SCHEDULED")


@task("mpps-start", _prepare_start, _show_me_start)
def mpps_start(ctx: LabContext, values: Values) -> Seen | None:
    accession = values["accession"]
    order = ris_order(ctx, accession)
    if order is None:
        return Seen(False, f"no order {accession} in the RIS (rerun `dicomkit lesson 10`)")
    status = _status(order)
    if status == "SCHEDULED":
        return None
    if status == "DISCONTINUED":
        return Seen(False, f"order {accession} DISCONTINUED: rerun `dicomkit lesson 10`")
    return Seen(True, f"order {accession} is {status} in the RIS: the MPPS SCP told it "
                f"(step {order.get('mpps_sop_instance_uid') or '?'})")  # fmt: skip


@action("acquire_and_store")
def acquire_and_store(ctx: LabContext) -> None:
    from dicomkit.dicom.image import save_image
    from dicomkit.dicom.scu import store_files
    from dicomkit.tutor.steps.lesson04_acquire_an_image import make_from_worklist

    accession = str(ctx.need("task_accession", 10, own=True))
    path = workdir(ctx, "lesson-10") / f"{accession}.dcm"
    save_image(make_from_worklist(ctx, accession), path)
    report = store_files(ctx.pacs, ctx.aet, [path], timeout=ctx.cfg.timeout)
    if report.failed:
        first = report.failed[0]
        raise DicomkitError(f"the PACS did not store the image: {first.error or first.status_name}",
                            "see `dicomkit logs pacs`, then rerun `dicomkit lesson 10`")  # fmt: skip
    ctx.out.show(f"{ui.OK} The tutor acquired an image for {accession} from the worklist item "
                 f"(still there: the step is only IN PROGRESS) and stored it in {ctx.pacs}.")  # fmt: skip
    ep = ctx.endpoints
    ctx.out.equivalent(f"storescu -aet {ctx.aet} -aec {ep.pacs_aet} {ep.host} {ep.dicom_port} "
                       f"{shlex.quote(str(path))}", "The store, by hand")  # fmt: skip


@task("mpps-complete", _prepare_complete, _show_me_complete)
def mpps_complete(ctx: LabContext, values: Values) -> Seen | None:
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    accession = values["accession"]
    order = ris_order(ctx, accession)
    if order is None:
        return Seen(False, f"no order {accession} in the RIS (rerun `dicomkit lesson 10`)")
    status = _status(order)
    if status == "IN PROGRESS":
        return None
    if status != "COMPLETED":
        return Seen(False, f"order {accession} is {status}: rerun `dicomkit lesson 10`")
    items = find_worklist(ctx.mwl, ctx.aet, WorklistQuery(accession=accession), ctx.cfg.timeout)
    if items:
        return Seen(False, f"order {accession} COMPLETED, but its worklist item is still there")
    return Seen(True, f"order {accession} COMPLETED in the RIS, and its worklist item gone "
                "(MWL C-FIND: 0 matches)", {"mpps_accession": accession,
                "mpps_sop_instance_uid": order.get("mpps_sop_instance_uid", "")})  # fmt: skip


@action("mpps_after")
def mpps_after(ctx: LabContext) -> None:
    accession = str(ctx.need("mpps_accession", 10, own=True))
    order = ris_order(ctx, accession) or {}
    rows = [[k, str(order.get(k, ""))] for k in
            ("status", "mpps_sop_instance_uid", "status_updated", "study_instance_uid")]  # fmt: skip
    ctx.out.show(ui.table(f"Order {accession} in the RIS", ["field", "value"], rows))
    ep = ctx.endpoints
    ctx.out.equivalent(f"curl -sS {ep.ris_url}/orders/{accession}", "The order, from the RIS")
    ctx.out.equivalent(f"findscu -W -aet {ctx.aet} -aec {ep.pacs_aet} -k AccessionNumber="
                       f"{accession} -k PatientName {ep.host} {ep.mwl_port}",
                       "The worklist: no match any more")  # fmt: skip
