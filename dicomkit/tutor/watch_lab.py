"""How the tutor watches the lab for a task's result: what the lab's services saw (the event feed,
dicomkit/labevents.py: associations, C-ECHOs, C-FINDs with their match counts, C-STOREs, HTTP
requests), the RIS API, what the PACS stored (its REST API), and files the learner made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.errors import DicomkitError
from dicomkit.labevents import PROBE_HEADER, LabEvent, Mark, mark, read_feed
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def workdir(ctx: LabContext, name: str) -> Path:
    """The learner's folder for one task (outside the lab's own folder: the lab stays as it was)."""
    path = ctx.cfg.home / "tutor" / "work" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_answers(folder: Path) -> None:
    """Forget answers of an earlier try, so whatever appears now is the learner's new work."""
    for p in list(folder.glob("rsp*.dcm")) + list(folder.glob("*.json")):
        p.unlink(missing_ok=True)


def dicom_answers(folder: Path) -> list[Dataset]:
    """C-FIND responses findscu saved with -X (rsp0001.dcm, ...)."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    out: list[Dataset] = []
    for p in sorted(folder.glob("rsp*.dcm")):
        try:
            out.append(dcmread(p, force=True))
        except (InvalidDicomError, OSError, ValueError):
            continue  # still being written; the next look sees it whole
    return out


def json_answers(folder: Path) -> list[Any]:
    """JSON documents saved there (curl -o, dicomkit ... --json > FILE); unreadable ones skipped."""
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            out.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def mentions(doc: Any, value: str) -> bool:
    """Whether a JSON document holds ``value`` anywhere (a DICOM JSON Value, a REST field, ...)."""
    return value in json.dumps(doc)


def rest_find(
    ctx: LabContext, level: str, query: dict[str, str], expand: bool = False, probe: bool = True
) -> list[Any]:
    """Orthanc's REST ``POST /tools/find`` (the embedded PACS answers the same subset).
    ``probe``: the tutor's own look, which the lab's event feed leaves out."""
    import httpx

    body = {"Level": level, "Query": query, "Expand": expand}
    headers = {PROBE_HEADER: "1"} if probe else {}
    try:
        r = httpx.post(f"{ctx.endpoints.pacs_url}/tools/find", json=body, headers=headers,
                       timeout=ctx.cfg.timeout)  # fmt: skip
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise DicomkitError(
            f"the PACS REST API at {ctx.endpoints.pacs_url} failed: {exc}",
            "check `dicomkit status` and `dicomkit logs pacs`",
        ) from None
    return list(r.json())


def sop_in_pacs(ctx: LabContext, sop_uid: str) -> bool:
    """What the PACS stored, asked through its REST API."""
    return bool(rest_find(ctx, "Instance", {"SOPInstanceUID": sop_uid}))


def study_task_values(ctx: LabContext, name: str) -> dict[str, str]:
    """A search task's values: a fresh answers folder, the accession and the study to find."""
    folder = workdir(ctx, name)
    clear_answers(folder)
    return {"accession": str(ctx.need("accession", 5)), "workdir": str(folder),
            "study_uid": str(ctx.need("study_instance_uid", 5))}  # fmt: skip


# ---- what the lab's services saw ---------------------------------------------------------------


def watch_from_now(ctx: LabContext) -> Values:
    """A task's start in the lab's event feed: it sees only what happens from here on."""
    return {"events_mark": str(mark(ctx.cfg.lab_dir))}


def lab_saw(ctx: LabContext, values: Values, *services: str) -> list[LabEvent]:
    """What the lab's services saw since the task began (of these services), oldest first."""
    since = Mark.parse(values.get("events_mark", ""))
    found = read_feed(ctx.cfg.lab_dir, since, ctx.endpoints.pacs_aet)
    return [e for e in found if not services or e.service in services]


def status_text(status: Any, service: str = "") -> str:
    from dicomkit.dicom.net import status_name

    if not isinstance(status, int):
        return "status not known"
    return f"0x{status:04X} {status_name(status, service)}"


def matched(event: LabEvent, what: str = "item") -> str:
    """ "matched 1 item", or why the count is not known."""
    n = event.get("matches")
    if n is None:
        return "(its match count is not known: it matched on keys whose values the feed keeps out)"
    return f"matched {n} {what}{'' if n == 1 else 's'}"


def rejected_association(ctx: LabContext, events: list[LabEvent]) -> Seen | None:
    """The learner's association turned away (a wrong called AE title), in words."""
    for e in reversed(events):
        if e.service == "association" and e.get("accepted") is False:
            return Seen(False, f"an association from calling AE {e.calling} to called AE "
                        f"{e.called or '?'}, rejected ({e.get('reason', 'rejected')}): the PACS's "
                        f"AE title is {ctx.endpoints.pacs_aet}")  # fmt: skip
    return None


def date_covers(value: str | None, day: str) -> bool:
    """Whether a DA matching value (a date, or a range A-B, A-, -B: PS3.4 C.2.2.2.5) holds ``day``."""
    if not value:
        return False
    if "-" not in value:
        return value == day
    start, _, end = value.partition("-")
    return (not start or start <= day) and (not end or day <= end)


def age_s(event: LabEvent) -> float:
    """Seconds since the event (0 when its time is unreadable)."""
    import datetime as _dt

    try:
        t = _dt.datetime.fromisoformat(event.t)
    except ValueError:
        return 0.0
    return (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()
