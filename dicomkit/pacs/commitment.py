"""Storage Commitment Push Model SCP (PS3.4 Annex J): the PACS takes custody of instances.

N-ACTION (Request Storage Commitment) is answered at once; the result follows as an
N-EVENT-REPORT (J.3.3) listing the committed instances (Referenced SOP Sequence) and the failed
ones (Failed SOP Sequence, Failure Reason 0x0112 for an instance we do not hold). The report
goes on the same association while the requestor keeps it open, else on a new association to
the requestor's AE as configured with host and port (settings.py ``modalities``), as Orthanc
sends it. An instance counts as committed only when its stored file walks whole and names the
requested SOP Class and Instance.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from dicomkit.dicom import dataset
from dicomkit.pacs.index import Index
from dicomkit.pacs.settings import ServerConfig
from dicomkit.pacs.storage import Storage

log = logging.getLogger(__name__)

STORAGE_COMMITMENT_PUSH = "1.2.840.10008.1.20.1"  # PS3.4 J.3
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"  # the well-known SOP Instance (J.3.5)
REQUEST_COMMITMENT = 1  # Action Type ID (PS3.4 Table J.3-1)
ALL_COMMITTED, SOME_FAILED = 1, 2  # Event Type ID (PS3.4 Table J.3-2)

# PS3.3 C.14.1.1 Failure Reasons, and N-ACTION statuses (PS3.7 10.1.4.1.10).
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
PROCESSING_FAILURE = 0x0110
NO_SUCH_ACTION_TYPE = 0x0123
MISSING_ATTRIBUTE = 0x0120
SUCCESS = 0x0000
SAME_ASSOCIATION_WAIT = 5.0  # seconds for the requestor's N-EVENT-REPORT-RSP on its association


@dataclass
class Outcome:
    transaction_uid: str
    committed: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, int]] = field(default_factory=list)

    def event_information(self) -> Any:
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.TransactionUID = self.transaction_uid
        if self.committed:
            ds.ReferencedSOPSequence = [_ref(c, i) for c, i in self.committed]
        if self.failed:
            items = []
            for c, i, reason in self.failed:
                item = _ref(c, i)
                item.FailureReason = reason
                items.append(item)
            ds.FailedSOPSequence = items
        return ds

    @property
    def event_type(self) -> int:
        return SOME_FAILED if self.failed else ALL_COMMITTED


def _ref(sop_class: str, sop_instance: str) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def check_instances(info: Any, index: Index, storage: Storage) -> Outcome:
    """Which requested instances this PACS holds whole (PS3.4 J.3.2: the Action Information)."""
    out = Outcome(str(info.get("TransactionUID", "") or ""))
    for item in info.get("ReferencedSOPSequence", None) or []:
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "")
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "")
        rel = index.instance_path(sop_instance) if sop_instance else None
        if rel is None:
            out.failed.append((sop_class, sop_instance, NO_SUCH_OBJECT_INSTANCE))
            continue
        try:
            part = dataset.parse_part10(storage.read(rel))
            stored_class, stored_instance = part.dataset.sop_uids()
        except (OSError, dataset.Malformed) as exc:
            log.error("storage commitment: stored copy of %s unreadable: %s", sop_instance, exc)
            out.failed.append((sop_class, sop_instance, PROCESSING_FAILURE))
            continue
        if (stored_class, stored_instance) != (sop_class, sop_instance):
            out.failed.append((sop_class, sop_instance, CLASS_INSTANCE_CONFLICT))
        else:
            out.committed.append((sop_class, sop_instance))
    return out


class CommitmentScp:
    """The handlers (bound in pacs/server.py) and the report sender."""

    def __init__(self, cfg: ServerConfig, index: Index, storage: Storage) -> None:
        self.cfg, self.index, self.storage = cfg, index, storage
        self._due: dict[Any, Outcome] = {}  # association -> report to send after the N-ACTION-RSP
        self._lock = threading.Lock()

    def handle_action(self, event: Any) -> tuple[int, Any]:
        """EVT_N_ACTION: check the request, answer, and send the report once answered."""
        try:
            if int(event.action_type) != REQUEST_COMMITMENT:
                return NO_SUCH_ACTION_TYPE, None
            if str(event.request.RequestedSOPClassUID) != STORAGE_COMMITMENT_PUSH:
                return PROCESSING_FAILURE, None
            info = event.action_information
            if not info.get("TransactionUID") or "ReferencedSOPSequence" not in info:
                return MISSING_ATTRIBUTE, None  # PS3.4 Table J.3-1: both Type 1
            outcome = check_instances(info, self.index, self.storage)
        except Exception:
            log.exception("storage commitment N-ACTION failed")
            return PROCESSING_FAILURE, None
        requestor = str(event.assoc.requestor.ae_title).strip()
        log.info("storage commitment %s from %s: %d committed, %d failed",
                 outcome.transaction_uid, requestor, len(outcome.committed),
                 len(outcome.failed))  # fmt: skip
        with self._lock:
            self._due[event.assoc] = outcome
        return SUCCESS, None

    def handle_sent(self, event: Any) -> None:
        """EVT_DIMSE_SENT: once the N-ACTION-RSP is out, the report may follow (J.3.3)."""
        from pynetdicom.dimse_messages import N_ACTION_RSP

        if not isinstance(event.message, N_ACTION_RSP):
            return
        with self._lock:
            outcome = self._due.pop(event.assoc, None)
        if outcome is not None:
            threading.Thread(target=self.report, args=(event.assoc, outcome),
                             name="commitment-report", daemon=True).start()  # fmt: skip

    def report(self, assoc: Any, outcome: Outcome) -> None:
        requestor = str(assoc.requestor.ae_title).strip()
        if assoc.is_established:
            # A requestor that left (abort) leaves pynetdicom waiting the whole DIMSE timeout
            # for an answer: one that stays answers at once, so wait briefly, then go new.
            saved, assoc.dimse_timeout = assoc.dimse_timeout, SAME_ASSOCIATION_WAIT
            try:
                status, _ = assoc.send_n_event_report(outcome.event_information(),
                                                      outcome.event_type, STORAGE_COMMITMENT_PUSH,
                                                      STORAGE_COMMITMENT_INSTANCE)  # fmt: skip
            except Exception as exc:
                status = None  # e.g. the association ended meanwhile
                log.info("commitment report on the same association failed (%s)", exc)
            finally:
                assoc.dimse_timeout = saved
            code = int(status.Status) if status is not None and "Status" in status else None
            if code == SUCCESS:
                log.info("storage commitment %s reported to %s on the same association",
                         outcome.transaction_uid, requestor)  # fmt: skip
                return
            # No answer, or a refusal (a requestor with no N-EVENT-REPORT handler): the
            # report is still owed, so it goes on a new association (PS3.4 J.3.3).
            log.info("commitment report on the same association answered %s",
                     "nothing" if code is None else f"0x{code:04X}")  # fmt: skip
        self._report_new_association(requestor, outcome)

    def _report_new_association(self, requestor: str, outcome: Outcome) -> None:
        from pynetdicom import AE
        from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation

        dest = self.cfg.find_modality(requestor)
        if dest is None:
            log.warning("storage commitment %s: cannot report to unknown AE %r (register it "
                        "with host and port)", outcome.transaction_uid, requestor)  # fmt: skip
            return
        ae = AE(ae_title=self.cfg.aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.cfg.network_timeout
        ae.add_requested_context(STORAGE_COMMITMENT_PUSH)
        # PS3.4 J.3.3: on a new association the PACS (the SCP) is the requestor: it proposes
        # the SCP role so the N-EVENT-REPORT flows the right way.
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = STORAGE_COMMITMENT_PUSH
        role.scu_role, role.scp_role = False, True
        assoc = ae.associate(dest.host, dest.port, ae_title=dest.aet, ext_neg=[role])
        if not assoc.is_established:
            log.warning("storage commitment %s: no association with %s@%s:%d for the report",
                        outcome.transaction_uid, dest.aet, dest.host, dest.port)  # fmt: skip
            ae.shutdown()
            return
        try:
            status, _ = assoc.send_n_event_report(outcome.event_information(),
                                                  outcome.event_type, STORAGE_COMMITMENT_PUSH,
                                                  STORAGE_COMMITMENT_INSTANCE)  # fmt: skip
            code = int(status.Status) if status is not None and "Status" in status else None
            log.info("storage commitment %s reported to %s@%s:%d on a new association "
                     "(status %s)", outcome.transaction_uid, dest.aet, dest.host, dest.port,
                     "none" if code is None else f"0x{code:04X}")  # fmt: skip
        finally:
            if assoc.is_established:
                assoc.release()
            ae.shutdown()
