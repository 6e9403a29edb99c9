"""Retrieval (PS3.4 C.4.2 C-MOVE, C.4.3 C-GET) of a study into a folder, every instance checked
whole before it is acknowledged (dicom/receiver.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomkit.dicom.net import Peer, association, status_category, status_name
from dicomkit.dicom.receiver import InstanceWriter, Received, listening, storage_contexts
from dicomkit.errors import DimseFailure, UsageError

log = logging.getLogger(__name__)

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
MOVE_DESTINATION_UNKNOWN = 0xA801  # PS3.4 C.4.2.1.5 Refused: Move Destination unknown


class StudyNotFound(UsageError):
    """No study in the PACS matches the accession: bad input (exit 2), as for anonymize."""


@dataclass
class RetrieveReport:
    peer: str
    method: str  # "C-MOVE" or "C-GET"
    out_dir: str
    destination: str = ""  # C-MOVE: where the PACS sent the instances (AE@host:port)
    studies: list[str] = field(default_factory=list)
    status: int | None = None  # the last C-MOVE/C-GET response's status
    status_name: str = ""
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)  # as the PACS listed them
    instances: list[Received] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.status is not None
            and status_category(self.status) == "success"
            and self.failed == 0
            and all(r.ok for r in self.instances)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "peer": self.peer,
            "method": self.method,
            "destination": self.destination,
            "out_dir": self.out_dir,
            "studies": self.studies,
            "status": self.status,
            "status_name": self.status_name,
            "completed": self.completed,
            "failed": self.failed,
            "warning": self.warning,
            "received": len([r for r in self.instances if r.ok]),
            "refused": len([r for r in self.instances if not r.ok]),
            "failed_uids": self.failed_uids,
            "instances": [r.to_dict() for r in self.instances],
        }


def study_uids(peer: Peer, calling_aet: str, accession: str, timeout: float) -> list[str]:
    """The Study Instance UIDs of an accession (Study Root C-FIND, PS3.4 C.6.2)."""
    from dicomkit.dicom.scu import StudyQuery, find_studies

    rows = find_studies(peer, calling_aet, StudyQuery(accession=accession), timeout)
    uids = sorted({r["study_instance_uid"] for r in rows if r["study_instance_uid"]})
    if not uids:
        raise StudyNotFound(
            f"no study with accession {accession!r} in {peer}",
            "store the images first (`dicomkit store`), or check with `dicomkit studies`",
        )
    return uids


def _identifier(study_uid: str) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    return ds


def _prepare_out(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} exists and is not a folder", "name a folder for --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {out_dir}: {exc.strerror or exc}", "name a writable "
                         "folder for --out") from None  # fmt: skip


def _take(report: RetrieveReport, rsp: Any) -> None:
    """Record one C-MOVE/C-GET response's status and sub-operation counts (PS3.4 C.4.2.1.5)."""
    code = int(rsp.Status) if rsp is not None and "Status" in rsp else None
    # C-MOVE/C-GET: Cxxx is "Unable to process", A9xx "Identifier does not match SOP class",
    # B000 "Sub-operations complete, one or more failures" (PS3.4 C.4.2.1.5 / C.4.3.1.4)
    report.status, report.status_name = code, status_name(code, "retrieve")
    if rsp is None:
        return
    for attr, key in (("completed", "NumberOfCompletedSuboperations"),
                      ("failed", "NumberOfFailedSuboperations"),
                      ("warning", "NumberOfWarningSuboperations")):  # fmt: skip
        if key in rsp and rsp.get(key) is not None and status_category(code) != "pending":
            setattr(report, attr, getattr(report, attr) + int(rsp.get(key)))


def _failed_uids(identifier: Any) -> list[str]:
    if identifier is None or "FailedSOPInstanceUIDList" not in identifier:
        return []
    value = identifier.FailedSOPInstanceUIDList
    return [str(v) for v in (value if isinstance(value, list | tuple) else [value]) if v]


def _raise_final(report: RetrieveReport, peer: Peer, our_aet: str) -> None:
    code = report.status
    register = (
        f"the PACS sends C-MOVE sub-operations only to AEs it knows with host and port: "
        f"register AE {our_aet} as {report.destination.split('@', 1)[-1]} (Orthanc: "
        f"DicomModalities in orthanc.json; the lab's PACS knows its own AE after `dicomkit up`, "
        f"so use it: --aet DICOMKIT), or use --get (C-GET needs no registration)"
    )
    if code == MOVE_DESTINATION_UNKNOWN:
        raise DimseFailure(
            f"C-MOVE to {peer} refused: move destination {our_aet!r} unknown (0xA801)",
            register,
            status=code,
        )
    nothing = report.completed == 0 and not report.instances
    if report.method == "C-MOVE" and code is not None and code >= 0xA000 and nothing:
        # Orthanc answers an unknown destination with 0xC000 (its log: "unknown modality").
        raise DimseFailure(
            f"C-MOVE to {peer} failed: 0x{code:04X} {report.status_name}; nothing was sent to "
            f"{report.destination}",
            f"see the PACS log (dicomkit logs pacs); if it names an unknown AE or modality, {register}",
            status=code,
        )
    if code is None:
        raise DimseFailure(
            f"{report.method} to {peer}: no final response (association lost)",
            "see the PACS log (dicomkit logs pacs)",
            status=None,
        )


def retrieve(
    peer: Peer,
    calling_aet: str,
    out_dir: Path,
    *,
    accession: str = "",
    study_uid: str = "",
    use_get: bool = False,
    listen_host: str = "127.0.0.1",
    listen_port: int = 11112,
    timeout: float = 30.0,
) -> RetrieveReport:
    """Retrieve the study (by accession or Study Instance UID) into ``out_dir``.

    C-MOVE (default): we run a Storage SCP as ``calling_aet`` on listen_host:listen_port for the
    duration, and ask the PACS to move the study to that AE (the PACS must know it with this
    host and port). C-GET: the instances come back on our own association (PS3.4 C.4.3)."""
    if bool(accession) == bool(study_uid):
        raise UsageError("name the study: --accession or --study-uid (one of them)",
                         "e.g. dicomkit retrieve --accession ACC-1001 --out ./retrieved")  # fmt: skip
    _prepare_out(out_dir)
    uids = [study_uid] if study_uid else study_uids(peer, calling_aet, accession, timeout)
    writer = InstanceWriter(out_dir)
    report = RetrieveReport(str(peer), "C-GET" if use_get else "C-MOVE", str(out_dir))
    report.studies = uids
    if use_get:
        _get(peer, calling_aet, uids, writer, report, timeout)
    else:
        report.destination = f"{calling_aet}@{listen_host}:{listen_port}"
        with listening(calling_aet, listen_host, listen_port, writer=writer,
                       accept_from=None, timeout=timeout):  # fmt: skip
            _move(peer, calling_aet, uids, report, timeout)
    report.instances = list(writer.received)
    _raise_final(report, peer, calling_aet)
    return report


def _move(peer: Peer, calling_aet: str, uids: list[str], report: RetrieveReport,
          timeout: float) -> None:  # fmt: skip
    from pynetdicom.presentation import build_context

    with association(
        peer, calling_aet, [build_context(STUDY_ROOT_MOVE)], timeout=timeout, what="retrieve"
    ) as assoc:
        for uid in uids:
            for rsp, ident in assoc.send_c_move(_identifier(uid), calling_aet, STUDY_ROOT_MOVE):
                _take(report, rsp)
                report.failed_uids += _failed_uids(ident)
            if report.status is None or status_category(report.status) == "failure":
                return


def _get(peer: Peer, calling_aet: str, uids: list[str], writer: InstanceWriter,
         report: RetrieveReport, timeout: float) -> None:  # fmt: skip
    from pynetdicom import evt
    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.receiver import handle_store

    contexts = [build_context(STUDY_ROOT_GET), *_get_contexts(peer, calling_aet, uids, timeout)]
    roles = []
    for cx in {str(c.abstract_syntax): c for c in contexts[1:]}.values():
        # PS3.4 C.4.3 / PS3.7 D.3.3.4: we take the Storage SCP role on this association.
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = cx.abstract_syntax
        role.scu_role, role.scp_role = False, True
        roles.append(role)
    handlers = [(evt.EVT_C_STORE, handle_store, [writer])]
    with association(peer, calling_aet, contexts, timeout=timeout, ext_neg=roles,
                     handlers=handlers, what="retrieve") as assoc:  # fmt: skip
        for uid in uids:
            for rsp, ident in assoc.send_c_get(_identifier(uid), STUDY_ROOT_GET):
                _take(report, rsp)
                report.failed_uids += _failed_uids(ident)
            if report.status is None or status_category(report.status) == "failure":
                return


def _get_contexts(peer: Peer, calling_aet: str, uids: list[str], timeout: float) -> list[Any]:
    """Storage contexts for a C-GET. An accepted context carries one transfer syntax, so the
    study's own SOP classes get one context per syntax (a JPEG 2000 instance then comes back as
    stored, not transcoded by the PACS); common classes with every syntax when they do not fit
    in the 127 contexts beside the Get context (PS3.8 9.3.2.2), or the PACS lists no classes."""
    from pynetdicom.presentation import build_context

    from dicomkit.dicom.receiver import TRANSFER_SYNTAXES
    from dicomkit.dicom.scu import find_instances

    classes: set[str] = set()
    for uid in uids:
        try:
            classes |= {c for c, _ in find_instances(peer, calling_aet, uid, timeout) if c}
        except DimseFailure as exc:
            log.info("C-FIND for the study's SOP classes failed (%s): common contexts", exc)
            return storage_contexts()
    if not classes or len(classes) * len(TRANSFER_SYNTAXES) > 127:
        return storage_contexts()
    return [build_context(c, [ts]) for c in sorted(classes) for ts in TRANSFER_SYNTAXES]
