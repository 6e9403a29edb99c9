"""Reading what the running lab recorded about one accession (the RIS's order events and HL7
journal, the PACS's stored instances, this side's commitment record) into a timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dicomkit.errors import DicomkitError
from dicomkit.labevents import FEED_ENGINES
from dicomkit.timeline.rows import (
    RAD,
    Timeline,
    from_commitments,
    from_hl7_refusals,
    from_instances,
    from_lab_events,
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


def unseen(engine: str, feed: bool) -> list[str]:
    """What this lab's services do not record, so the timeline cannot show it (``feed``: the
    lab writes its event feed of queries, stores and associations)."""
    if feed:
        first = ("accepted associations (one under each DICOM message above); refused ones "
                 "are shown.")  # fmt: skip
    else:
        first = (f"{RAD['worklist']}: this lab writes no event feed, so the C-FIND queries its "
                 "MWL SCP answered are not recorded.")  # fmt: skip
    out = [
        first,
        "RAD-4 Procedure Scheduled: this lab's RIS sends no HL7 to the PACS; the scheduled "
        "step reaches the modality as the worklist item the order created.",
        "HL7 messages the RIS refused are kept in its memory only, since it last started.",
    ]
    if engine in ORTHANC_ENGINES:
        out.append(f"{RAD['store']}, {RAD['worklist']}: Orthanc records times to the second "
                   "only.")  # fmt: skip
        out.append(f"{RAD['commit']}: Orthanc keeps no record of the commitment requests it "
                   "answers; the rows come from the requester's own record (dicomkit commit).")  # fmt: skip
    else:
        if not feed:
            out.append(f"{RAD['store']}: without its event feed the embedded PACS does not "
                       "record which AE sent an instance.")  # fmt: skip
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
    sops = {i["sop_instance_uid"] for i in instances}
    rows += from_commitments(remembered(cfg.commitments_file), sops, cfg.aet)
    feed = engine in FEED_ENGINES
    seen = [r.at for r in ordered(rows) if r.at]
    if seen:
        found, stored = from_lab_events(lab_events(cfg, ep), accession, sops, (seen[0], seen[-1]))
        rows += found
    else:
        stored = set()
    # A store the feed showed (with its sender, to the millisecond) stands for the PACS's own.
    rows += from_instances([i for i in instances if i["sop_instance_uid"] not in stored],
                           ep.pacs_aet)  # fmt: skip
    return Timeline(accession, engine, ordered(rows), unseen(engine, feed))


def lab_events(cfg: LabConfig, ep: Endpoints) -> list[dict[str, Any]]:
    """The lab's event feed as plain records (dicomkit/labevents.py)."""
    from dicomkit.labevents import read_feed

    return [{"t": e.t, "service": e.service, "calling": e.calling, "called": e.called,
             **e.fields} for e in read_feed(cfg.lab_dir, None, ep.pacs_aet)]  # fmt: skip
