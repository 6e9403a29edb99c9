"""Reading what the running lab recorded about one accession (the RIS's order events and HL7
journal, the PACS's stored instances, this side's commitment record) into a timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dicomkit.errors import DicomkitError
from dicomkit.timeline.rows import (
    RAD,
    Timeline,
    from_commitments,
    from_hl7_refusals,
    from_instances,
    from_order_events,
    ordered,
)

if TYPE_CHECKING:
    from dicomkit.config import Endpoints, LabConfig

ORTHANC_ENGINES = ("docker", "native")


def _pacs(ep: Endpoints, timeout: float, method: str, path: str, **kw: Any) -> Any:
    import httpx

    try:
        r = httpx.request(method, f"{ep.pacs_url}{path}", timeout=timeout, **kw)
    except httpx.HTTPError as exc:
        raise DicomkitError(f"the PACS REST API at {ep.pacs_url} failed: {exc}",
                            "check `dicomkit status` and `dicomkit logs pacs`") from None  # fmt: skip
    if r.status_code == 404:
        return None
    if r.status_code >= 400:
        raise DicomkitError(f"the PACS answered {r.status_code} to {method} {path}",
                            "see `dicomkit logs pacs`")  # fmt: skip
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def stored_instances(ep: Endpoints, accession: str, timeout: float) -> list[dict[str, str]]:
    """The PACS's instances of the accession's study, with when (ReceptionDate) and from whom
    (RemoteAET, which Orthanc keeps and the embedded PACS does not) each arrived."""
    found = _pacs(ep, timeout, "POST", "/tools/find", json={
        "Level": "Instance", "Query": {"AccessionNumber": accession}, "Expand": True}) or []  # fmt: skip
    out = []
    for inst in found:
        rid = str(inst.get("ID", ""))
        received = _pacs(ep, timeout, "GET", f"/instances/{rid}/metadata/ReceptionDate")
        remote = _pacs(ep, timeout, "GET", f"/instances/{rid}/metadata/RemoteAET")
        out.append({"sop_instance_uid": str(inst.get("MainDicomTags", {}).get("SOPInstanceUID", "")),
                    "received": str(received or ""), "remote_aet": str(remote or ""),
                    "source": "PACS REST (instance metadata ReceptionDate"
                    + (", RemoteAET)" if remote else ")")})  # fmt: skip
    return out


def unseen(engine: str) -> list[str]:
    """What this lab's services do not record, so the timeline cannot show it."""
    out = [
        f"{RAD['worklist']}: the MWL SCP keeps no record of the C-FIND queries it answered.",
        "RAD-4 Procedure Scheduled: this lab's RIS sends no HL7 to the PACS; the scheduled "
        "step reaches the modality as the worklist item the order created.",
        "HL7 messages the RIS refused are kept in its memory only, since it last started.",
    ]
    if engine in ORTHANC_ENGINES:
        out.append(f"{RAD['store']}: Orthanc records each instance's reception time to the "
                   "second only.")  # fmt: skip
        out.append(f"{RAD['commit']}: Orthanc keeps no record of the commitment requests it "
                   "answers; the rows come from the requester's own record (dicomkit commit).")  # fmt: skip
    else:
        out.append(f"{RAD['store']}: the embedded PACS does not record which AE sent an "
                   "instance.")  # fmt: skip
        out.append(f"{RAD['commit']}: the embedded PACS logs commitment requests but keeps no "
                   "record of them; the rows come from the requester's own record "
                   "(dicomkit commit).")  # fmt: skip
    return out


def collect(cfg: LabConfig, ep: Endpoints, engine: str, accession: str) -> Timeline:
    """Every message the lab recorded for ``accession``, oldest first."""
    from dicomkit.dicom.commit import remembered
    from dicomkit.ris.client import RisClient

    ris = RisClient(ep.ris_url, timeout=cfg.timeout)
    events = ris.events(accession)
    instances = stored_instances(ep, accession, cfg.timeout)
    if not events and not instances:
        raise DicomkitError(f"the lab recorded nothing for accession {accession}",
                            "check the accession (`dicomkit order list`)")  # fmt: skip
    rows = from_order_events(events, "RIS", ep.mpps_aet)
    rows += from_hl7_refusals(ris.hl7_messages(), accession, "RIS")
    rows += from_instances(instances, ep.pacs_aet)
    sops = {i["sop_instance_uid"] for i in instances}
    rows += from_commitments(remembered(cfg.commitments_file), sops, cfg.aet)
    return Timeline(accession, engine, ordered(rows), unseen(engine))
