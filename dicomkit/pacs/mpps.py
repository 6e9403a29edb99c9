"""The MPPS SCP: Modality Performed Procedure Step (PS3.4 Annex F; IHE RAD-6/RAD-7).

A modality reports an exam with N-CREATE (IN PROGRESS) and one or more N-SETs, the last one
COMPLETED or DISCONTINUED. The service functions below take plain arguments and keep the
steps in SQLite (pacs/mppsstore.py); the pynetdicom handlers are thin adapters. After
each change the RIS is told (``POST /orders/{accession}/status``), so its order follows.

Served inside the embedded PACS (pacs/server.py) and, beside Orthanc, which has no MPPS SCP,
as a lab process of its own: ``python -m dicomkit.pacs.mpps --port N --aet AET --db FILE``.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.pacs.mppsstore import StepStore, first_scheduled

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

log = logging.getLogger("dicomkit.pacs.mpps")  # also when run as __main__

MPPS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step SOP Class
VERIFICATION = "1.2.840.10008.1.1"

# PS3.4 F.7.2.1.2 / F.7.2.2.2 and PS3.7 C: the statuses this SCP answers with.
SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106  # Failure: Invalid attribute value
PROCESSING_FAILURE = 0x0110  # Failure: Processing failure
DUPLICATE_SOP_INSTANCE = 0x0111  # Failure: Duplicate SOP Instance
NO_SUCH_OBJECT_INSTANCE = 0x0112  # Failure: No such object instance
MISSING_ATTRIBUTE = 0x0120  # Failure: Missing attribute
MISSING_ATTRIBUTE_VALUE = 0x0121  # Failure: Missing attribute value
NO_SUCH_SOP_CLASS = 0x0118  # Failure: No such SOP Class

# Performed Procedure Step Status (0040,0252), PS3.3 C.4.14.
IN_PROGRESS = "IN PROGRESS"
COMPLETED = "COMPLETED"
DISCONTINUED = "DISCONTINUED"
FINAL = (COMPLETED, DISCONTINUED)

# PS3.4 Table F.7.2-1, N-CREATE column: the Type 1 attributes (the SCU shall send a value).
CREATE_TYPE1 = (
    "ScheduledStepAttributesSequence",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "PerformedProcedureStepID",
    "PerformedProcedureStepStatus",
    "Modality",
)
# PS3.4 Table F.7.2-1: Type 1 inside each Scheduled Step Attributes Sequence item.
SCHEDULED_STEP_TYPE1 = ("StudyInstanceUID",)
# PS3.4 Table F.7.2-1, Final State column: what a COMPLETED or DISCONTINUED step must hold.
FINAL_TYPE1 = ("PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime")
# PS3.4 Table F.7.2-1, N-SET column "Not allowed": what identifies the step and what it
# performs. Sent again unchanged it is ignored (some modalities repeat it); changed, refused.
SET_NOT_ALLOWED = (
    "ScheduledStepAttributesSequence",
    "PatientID",
    "PerformedProcedureStepID",
    "PerformedStationAETitle",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "Modality",
)
# PS3.4 Table F.7.2-1: Type 1 inside each Performed Series Sequence item.
SERIES_TYPE1 = ("SeriesInstanceUID",)


@dataclass
class Outcome:
    """What a service call answers: the DIMSE status, an Error Comment (64 chars, LO) and,
    on success, the step's SOP Instance UID and its new state."""

    status: int
    comment: str = ""
    sop_instance: str = ""
    state: str = ""
    accession: str = ""
    study_uid: str = ""

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


def _missing(ds: Dataset, keywords: tuple[str, ...], where: str = "") -> Outcome | None:
    """0x0120 for an absent Type 1 attribute, 0x0121 for an empty one, naming it."""
    for kw in keywords:
        tag = _tag(kw)
        if kw not in ds:
            return Outcome(MISSING_ATTRIBUTE, f"missing {kw} {tag}{where}")
        value = ds[kw].value
        if value is None or value == "" or (kw.endswith("Sequence") and len(value) == 0):
            return Outcome(MISSING_ATTRIBUTE_VALUE, f"empty {kw} {tag}{where}")
    return None


def _tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    t = tag_for_keyword(keyword) or 0
    return f"({t >> 16:04X},{t & 0xFFFF:04X})"


def create_step(store: StepStore, sop_instance: str, attrs: Dataset) -> Outcome:
    """N-CREATE (PS3.4 F.7.2.1): a new step, IN PROGRESS, with its Type 1 attributes.
    ``sop_instance`` empty: the SCP assigns one (F.7.2.1.2)."""
    from pydicom.uid import generate_uid

    bad = _missing(attrs, CREATE_TYPE1)
    if bad is not None:
        return bad
    for i, item in enumerate(attrs.ScheduledStepAttributesSequence):
        bad = _missing(item, SCHEDULED_STEP_TYPE1, f" in (0040,0270) item {i}")
        if bad is not None:
            return bad
    state = str(attrs.PerformedProcedureStepStatus).strip()
    if state != IN_PROGRESS:
        # F.7.2.1.2: a step is created IN PROGRESS; it ends only through N-SET.
        return Outcome(INVALID_ATTRIBUTE_VALUE,
                       f"Status (0040,0252) must be IN PROGRESS, not {state[:16]!r}")  # fmt: skip
    uid = sop_instance or str(generate_uid())
    ds = copy.deepcopy(attrs)
    ds.SOPClassUID = MPPS
    ds.SOPInstanceUID = uid
    if not store.insert(uid, ds):
        return Outcome(DUPLICATE_SOP_INSTANCE, f"SOP Instance {uid[:40]} exists")
    accession, study = first_scheduled(ds)
    log.info("MPPS %s created IN PROGRESS (accession %s)", uid, accession or "-")
    return Outcome(SUCCESS, "", uid, IN_PROGRESS, accession, study)


def set_step(store: StepStore, sop_instance: str, mods: Dataset) -> Outcome:
    """N-SET (PS3.4 F.7.2.2): change a step that is still IN PROGRESS; a COMPLETED or
    DISCONTINUED one must then hold the Final State attributes. Nothing is written unless
    every check passes."""
    found = store.get(sop_instance)
    if found is None:
        return Outcome(NO_SUCH_OBJECT_INSTANCE, "no such MPPS SOP Instance")
    state, ds = found
    if state in FINAL:
        # F.7.2.2.2: Processing failure, "Performed Procedure Step Object may no longer be
        # updated" (Error ID A710).
        return Outcome(PROCESSING_FAILURE, f"step is {state}: it may no longer be updated")
    for kw in SET_NOT_ALLOWED:
        if kw in mods and (kw not in ds or mods[kw].value != ds[kw].value):
            return Outcome(INVALID_ATTRIBUTE_VALUE, f"{kw} {_tag(kw)} may not change by N-SET")
    merged = copy.deepcopy(ds)
    for elem in mods:
        merged[elem.tag] = elem  # a sequence is replaced whole (PS3.4 F.7.2.2)
    new_state = str(merged.get("PerformedProcedureStepStatus", "") or "").strip()
    if new_state not in (IN_PROGRESS, *FINAL):
        return Outcome(INVALID_ATTRIBUTE_VALUE,
                       f"Status (0040,0252) {new_state[:16]!r} is no PPS status")  # fmt: skip
    merged.PerformedProcedureStepStatus = new_state
    if new_state in FINAL:
        bad = _missing(merged, FINAL_TYPE1)
        series = merged.get("PerformedSeriesSequence") or []
        if bad is None and new_state == COMPLETED and not len(series):
            # Final State: one or more series for COMPLETED. A DISCONTINUED step may have
            # none (IHE RAD TF-2 4.7: the exam stopped before any image was made).
            bad = Outcome(MISSING_ATTRIBUTE_VALUE, "empty PerformedSeriesSequence (0040,0340)")
        for i, item in enumerate(series):
            bad = bad or _missing(item, SERIES_TYPE1, f" in (0040,0340) item {i}")
        if bad is not None:
            return bad
    if not store.replace(sop_instance, state, merged):
        return Outcome(PROCESSING_FAILURE, "step changed meanwhile: may no longer be updated")
    accession, study = first_scheduled(merged)
    log.info("MPPS %s set %s (accession %s)", sop_instance, new_state, accession or "-")
    return Outcome(SUCCESS, "", sop_instance, new_state, accession, study)


class MppsService:
    """The SCP's state and its link to the RIS (``ris_url`` empty: the RIS is not told)."""

    def __init__(self, store: StepStore, ris_url: str = "", timeout: float = 5.0) -> None:
        self.store = store
        self.ris_url = ris_url
        self.timeout = timeout
        self._tell_lock = threading.Lock()

    def create(self, sop_instance: str, attrs: Dataset) -> Outcome:
        out = create_step(self.store, sop_instance, attrs)
        if out.ok:
            self.tell_ris()
        return out

    def set(self, sop_instance: str, mods: Dataset) -> Outcome:
        out = set_step(self.store, sop_instance, mods)
        if out.ok:
            self.tell_ris()
        return out

    def tell_ris(self) -> None:
        """Send the RIS every state it has not acknowledged, oldest first. A RIS that is down
        is told later (the next change, or the next start); an order it does not know (an
        unscheduled exam, PS3.4 F.7.2.1: no Scheduled Step match) is logged and left."""
        if not self.ris_url:
            return
        from dicomkit.errors import ConnectionFailed, RisError
        from dicomkit.ris.client import RisClient

        client = RisClient(self.ris_url, timeout=self.timeout)
        with self._tell_lock:
            for uid, state, accession, study in self.store.pending():
                try:
                    if not accession and study:
                        accession = _accession_of_study(client, study)
                    if accession:
                        received, station = self.store.heard(uid)
                        client.set_status(accession, state, uid, study, received, station)
                        log.info("RIS told: order %s is %s (MPPS %s)", accession, state, uid)
                    else:
                        log.warning("MPPS %s names no order the RIS knows: not told", uid)
                except ConnectionFailed as exc:
                    log.warning("RIS not told that MPPS %s is %s, will retry: %s", uid, state,
                                exc.message)  # fmt: skip
                    return
                except RisError as exc:
                    if exc.status >= 500:  # the RIS is failing, not refusing: try again later
                        log.warning("RIS failed on MPPS %s %s, will retry: %s", uid, state,
                                    exc.message)  # fmt: skip
                        return
                    log.warning("RIS refused MPPS %s %s for order %s: %s", uid, state,
                                accession, exc.message)  # fmt: skip
                self.store.mark_told(uid, state)


def _accession_of_study(client: Any, study_uid: str) -> str:
    for order in client.list_orders():
        if order.get("study_instance_uid") == study_uid:
            return str(order["order"]["accession"])
    return ""


# ---- pynetdicom adapters ------------------------------------------------------------------


def _status(out: Outcome) -> Any:
    from pydicom.dataset import Dataset

    rsp = Dataset()
    rsp.Status = out.status
    if out.comment:
        rsp.ErrorComment = out.comment[:64]  # LO
    return rsp


def _serve(what: str, sop_class: Any, instance: Any, decode: Any, call: Any) -> Outcome:
    """One N-CREATE or N-SET: decode the data set, call the service; a failure is a status,
    logged, never an exception into pynetdicom."""
    if str(sop_class) != MPPS:
        return Outcome(NO_SUCH_SOP_CLASS, "SOP class not supported")
    try:
        ds = decode()
    except Exception:
        log.exception("%s: cannot decode the data set", what)
        return Outcome(PROCESSING_FAILURE, "cannot decode the data set")
    try:
        out: Outcome = call(str(instance or ""), ds)
    except Exception:
        log.exception("%s: the step could not be kept", what)
        return Outcome(PROCESSING_FAILURE, "the step could not be kept")
    if not out.ok:
        log.warning("MPPS %s on %s refused: 0x%04X %s", what, instance or "-", out.status,
                    out.comment)  # fmt: skip
    return out


def handle_n_create(event: Any, service: MppsService) -> tuple[Any, Any]:
    """EVT_N_CREATE: the create service on the decoded attribute list."""
    from pydicom.dataset import Dataset

    rq = event.request
    out = _serve("N-CREATE", rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID,
                 lambda: event.attribute_list, service.create)  # fmt: skip
    answer = None
    if out.ok and rq.AffectedSOPInstanceUID is None:
        answer = Dataset()
        answer.AffectedSOPInstanceUID = out.sop_instance  # PS3.7 10.1.5.1.4: the SCP's UID
    return _status(out), answer


def handle_n_set(event: Any, service: MppsService) -> tuple[Any, Any]:
    """EVT_N_SET: the set service on the decoded modification list."""
    rq = event.request
    out = _serve("N-SET", rq.RequestedSOPClassUID, rq.RequestedSOPInstanceUID,
                 lambda: event.modification_list, service.set)  # fmt: skip
    return _status(out), None


def handlers(service: MppsService) -> list[Any]:
    from pynetdicom import evt

    return [
        (evt.EVT_N_CREATE, handle_n_create, [service]),
        (evt.EVT_N_SET, handle_n_set, [service]),
    ]


# ---- the lab process beside Orthanc ------------------------------------------------------


def serve(host: str, port: int, aet: str, service: MppsService, timeout: float = 30.0) -> Any:
    """An AE that takes Verification and MPPS on ``host:port``, called ``aet``; returns the
    server (``shutdown()`` stops it)."""
    from pynetdicom import AE

    from dicomkit.dicom.net import nodelay_handler

    ae = AE(ae_title=aet)
    ae.require_called_aet = True  # as the PACS: reject a wrong called AE (source 1, reason 7)
    ae.maximum_pdu_size = 1024 * 1024
    ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = timeout
    for sop in (VERIFICATION, MPPS):
        ae.add_supported_context(sop, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])

    def echo(event: Any) -> int:
        return SUCCESS

    from pynetdicom import evt

    evt_handlers = [nodelay_handler(), (evt.EVT_C_ECHO, echo), *handlers(service)]
    return ae.start_server((host, port), block=False, evt_handlers=evt_handlers)


def main(argv: list[str] | None = None) -> None:
    """``python -m dicomkit.pacs.mpps``: the MPPS SCP as a process of its own."""
    import argparse
    import signal

    ap = argparse.ArgumentParser(prog="dicomkit-mpps", description=main.__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--aet", default="DICOMKIT_MPPS")
    ap.add_argument("--db", type=Path, required=True, help="the steps' SQLite file")
    ap.add_argument("--ris-url", default="", help="the RIS API to tell, e.g. http://127.0.0.1:5000")
    ap.add_argument("--log-level", default="info")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    service = MppsService(StepStore(args.db), args.ris_url)
    try:
        server = serve(args.host, args.port, args.aet, service)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        raise SystemExit(2) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("ready: MPPS SCP %s on %s:%d", args.aet, args.host, args.port)
    threading.Thread(target=service.tell_ris, name="ris-catch-up", daemon=True).start()
    stop.wait()
    log.info("stopping")
    server.shutdown()


if __name__ == "__main__":
    main()
