"""How the tutor watches the lab for a task's result: the learner's work folder (answers saved by
findscu -X, curl -o, dicomkit --json), the RIS API, and what the PACS stored (its REST API)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import LabContext

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
    ctx: LabContext, level: str, query: dict[str, str], expand: bool = False
) -> list[Any]:
    """Orthanc's REST ``POST /tools/find`` (the embedded PACS answers the same subset)."""
    import httpx

    body = {"Level": level, "Query": query, "Expand": expand}
    try:
        r = httpx.post(f"{ctx.endpoints.pacs_url}/tools/find", json=body, timeout=ctx.cfg.timeout)
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
