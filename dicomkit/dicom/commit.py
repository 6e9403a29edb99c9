"""Storage commitment, Push Model, as the SCU (PS3.4 Annex J): ask the PACS to take custody of
instances (N-ACTION) and wait for its answer (N-EVENT-REPORT), which the PACS sends on our
association while it is open or on a new association to our AE (we listen for both)."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomkit.dicom.net import Peer, association, status_category, status_name
from dicomkit.dicom.receiver import STORAGE_COMMITMENT_PUSH, listening
from dicomkit.errors import DicomkitError, DimseFailure, UsageError

log = logging.getLogger(__name__)

STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # well-known SOP Instance (PS3.4 J.3.5)
REQUEST_COMMITMENT = 1  # Action Type ID (PS3.4 Table J.3-1)
FAILURE_REASONS = {  # PS3.3 C.14.1.1 (Failure Reason)
    0x0110: "processing failure",
    0x0112: "no such object instance",
    0x0213: "resource limitation",
    0x0122: "referenced SOP class not supported",
    0x0119: "class / instance conflict",
    0x0131: "duplicate transaction UID",
}


class NoCommitmentReport(DicomkitError):
    """The PACS accepted the request but sent no N-EVENT-REPORT in time."""


@dataclass
class CommitResult:
    sop_class_uid: str
    sop_instance_uid: str
    committed: bool
    failure_reason: int | None = None
    reason: str = ""
    file: str = ""


@dataclass
class CommitReport:
    peer: str
    transaction_uid: str
    association: str = ""  # "same" or "new": how the report came back
    report_from: str = ""  # the PACS's AE title on the association that brought the report
    results: list[CommitResult] = field(default_factory=list)
    requested: str = ""  # when the N-ACTION went out (ISO 8601, UTC)
    reported: str = ""  # when the N-EVENT-REPORT came in

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.committed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "peer": self.peer,
            "transaction_uid": self.transaction_uid,
            "association": self.association,
            "report_from": self.report_from,
            "requested": self.requested,
            "reported": self.reported,
            "committed": len([r for r in self.results if r.committed]),
            "failed": len([r for r in self.results if not r.committed]),
            "instances": [r.__dict__ for r in self.results],
        }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def remember(path: Path, report: CommitReport) -> None:
    """Append the report to the requester's record (one JSON line each; a torn last line is
    skipped on reading), which `dicomkit timeline` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(report.to_dict(), sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def remembered(path: Path) -> list[dict[str, Any]]:
    """The reports ``remember`` kept, oldest first."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.split("\n")[:-1]:  # every whole line ends with "\n"
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def instances_of_files(files: list[Path]) -> list[tuple[str, str, str]]:
    """(SOP Class, SOP Instance, file) of each file, its data set walked whole."""
    from dicomkit.dicom import dataset

    out = []
    for f in files:
        try:
            buf = dataset.map_file(f)
        except OSError as exc:
            raise UsageError(f"cannot read {f}: {exc.strerror or exc}", "check the path") from None
        try:
            cls, inst = dataset.parse_part10(buf).dataset.sop_uids()
        except dataset.Malformed as exc:
            raise UsageError(f"{f} is not whole DICOM: {exc}", "name stored instances") from None
        finally:
            if not isinstance(buf, bytes):
                buf.close()
        if not cls or not inst:
            raise UsageError(f"{f} has no SOP Class/Instance UID", "name stored instances")
        out.append((cls, inst, str(f)))
    return out


class _Inbox:
    """Where the N-EVENT-REPORT lands, from whichever association brings it."""

    def __init__(self, transaction_uid: str) -> None:
        self.transaction_uid = transaction_uid
        self.info: Any = None
        self.how = ""
        self.calling = ""
        self.at = ""
        self.done = threading.Event()
        # Our N-EVENT-REPORT-RSP has gone out on our own association: only then may we
        # release it (a release overtaking the response makes the PACS abort).
        self.answered = threading.Event()

    def on_sent(self, event: Any) -> None:
        if type(event.message).__name__ == "N_EVENT_REPORT_RSP":
            self.answered.set()

    def handler(self, how: str) -> Any:
        def on_report(event: Any) -> tuple[int, None]:
            try:
                info = event.event_information
                uid = str(info.get("TransactionUID", ""))
            except Exception:
                log.exception("unreadable N-EVENT-REPORT")
                return 0x0110, None  # Processing failure
            if uid != self.transaction_uid or int(event.event_type) not in (1, 2):
                log.warning("N-EVENT-REPORT for another transaction (%s) ignored", uid)
                return 0x0110, None
            if not self.done.is_set():
                self.info, self.how, self.at = info, how, _now()
                # On our association the PACS is the acceptor; on a new one, the requestor.
                peer = event.assoc.acceptor if how == "same" else event.assoc.requestor
                self.calling = str(peer.ae_title).strip()
                self.done.set()
            return 0x0000, None

        return on_report


def _request(transaction_uid: str, instances: list[tuple[str, str, str]]) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.TransactionUID = transaction_uid
    refs = []
    for cls, inst, _ in instances:
        item = Dataset()
        item.ReferencedSOPClassUID = cls
        item.ReferencedSOPInstanceUID = inst
        refs.append(item)
    ds.ReferencedSOPSequence = refs  # PS3.4 Table J.3-1
    return ds


def commit(
    peer: Peer,
    calling_aet: str,
    instances: list[tuple[str, str, str]],
    *,
    listen_host: str = "127.0.0.1",
    listen_port: int = 11112,
    timeout: float = 30.0,
) -> CommitReport:
    """Request storage commitment for ``instances`` (class, instance, file) and wait up to
    ``timeout`` seconds for the PACS's report."""
    from pydicom.uid import generate_uid
    from pynetdicom import evt
    from pynetdicom.presentation import build_context

    if not instances:
        raise UsageError("no instances to commit", "name files, or an accession in the PACS")
    report = CommitReport(str(peer), str(generate_uid()))
    inbox = _Inbox(report.transaction_uid)
    with listening(calling_aet, listen_host, listen_port, on_event_report=inbox.handler("new"),
                   accept_from=peer.aet, timeout=timeout):  # fmt: skip
        with association(peer, calling_aet, [build_context(STORAGE_COMMITMENT_PUSH)],
                         timeout=timeout, what="storage commitment",
                         handlers=[(evt.EVT_N_EVENT_REPORT, inbox.handler("same")),
                                   (evt.EVT_DIMSE_SENT, inbox.on_sent)]) as assoc:  # fmt: skip
            report.requested = _now()
            status, _ = assoc.send_n_action(_request(report.transaction_uid, instances),
                                            REQUEST_COMMITMENT, STORAGE_COMMITMENT_PUSH,
                                            STORAGE_COMMITMENT_INSTANCE)  # fmt: skip
            code = int(status.Status) if status is not None and "Status" in status else None
            if status_category(code) not in ("success", "warning"):
                raise DimseFailure(
                    f"storage commitment request to {peer} failed: "
                    f"{'no response' if code is None else f'0x{code:04X}'} {status_name(code)}",
                    "see the PACS log (dicomkit logs pacs)",
                    status=code,
                )
            # Keep our association open while we wait: a PACS may report on it (J.3.3).
            inbox.done.wait(timeout)
            if inbox.how == "same":
                inbox.answered.wait(5.0)
        if not inbox.done.is_set():
            # The report may still come on a new association just after we released.
            inbox.done.wait(min(timeout, 5.0))
    if not inbox.done.is_set():
        raise NoCommitmentReport(
            f"{peer} accepted the storage commitment request (transaction "
            f"{report.transaction_uid}) but sent no N-EVENT-REPORT within {timeout:.0f} s",
            f"the PACS reports on a new association to AE {calling_aet} at "
            f"{listen_host}:{listen_port}: it must know that AE with that host and port "
            f"(Orthanc: DicomModalities), or raise --timeout",
        )
    report.association, report.report_from, report.reported = inbox.how, inbox.calling, inbox.at
    report.results = _results(inbox.info, instances)
    return report


def _results(info: Any, instances: list[tuple[str, str, str]]) -> list[CommitResult]:
    files = {inst: f for _, inst, f in instances}
    out: list[CommitResult] = []
    for item in info.get("ReferencedSOPSequence", None) or []:
        inst = str(item.get("ReferencedSOPInstanceUID", ""))
        out.append(CommitResult(str(item.get("ReferencedSOPClassUID", "")), inst, True,
                                file=files.get(inst, "")))  # fmt: skip
    for item in info.get("FailedSOPSequence", None) or []:
        inst = str(item.get("ReferencedSOPInstanceUID", ""))
        code = item.get("FailureReason", None)
        code = int(code) if code is not None else None
        reason = FAILURE_REASONS.get(code or 0, "unknown reason")
        out.append(CommitResult(str(item.get("ReferencedSOPClassUID", "")), inst, False, code,
                                reason, files.get(inst, "")))  # fmt: skip
    # PS3.4 J.3.3: every requested instance is listed as committed or failed; one missing from
    # both lists is not committed.
    seen = {r.sop_instance_uid for r in out}
    for cls, inst, f in instances:
        if inst not in seen:
            out.append(CommitResult(cls, inst, False, None, "not in the PACS's report", f))
    return out


def accession_instances(
    peer: Peer, calling_aet: str, accession: str, timeout: float
) -> list[tuple[str, str, str]]:
    """The instances of an accession's studies as the PACS lists them (C-FIND)."""
    from dicomkit.dicom.retrieve import study_uids
    from dicomkit.dicom.scu import find_instances

    out = []
    for study in study_uids(peer, calling_aet, accession, timeout):
        out += [(c, i, "") for c, i in find_instances(peer, calling_aet, study, timeout)]
    return out
