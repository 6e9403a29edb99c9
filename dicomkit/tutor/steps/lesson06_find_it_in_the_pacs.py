"""Lesson 6, find it in the PACS: the learner searches by accession (Study Root C-FIND, REST or
QIDO-RS); the tutor sees the search arrive at the PACS (the lab's event feed), then shows both
ways side by side."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from dicomkit import ui
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.show import ok_mark, panel
from dicomkit.tutor.watch_lab import lab_saw, matched, rest_find, watch_from_now


def _prepare(ctx: LabContext) -> Values:
    return {"accession": str(ctx.need("accession", 5)),
            "study_uid": str(ctx.need("study_instance_uid", 5)), **watch_from_now(ctx)}  # fmt: skip


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.scu import StudyQuery, find_studies

    find_studies(ctx.pacs, ctx.aet, StudyQuery(accession=values["accession"]), ctx.cfg.timeout)


# The HTTP searches for studies: Orthanc's REST API and QIDO-RS (PS3.18 10.6).
STUDY_SEARCHES = {("POST", "/tools/find"), ("GET", "/dicom-web/studies")}


@task("find-study", _prepare, _show_me, needs="events")
def find_study(ctx: LabContext, values: Values) -> Seen | None:
    """The study search the PACS saw: a Study Root C-FIND (its keys and match count) or a REST
    or QIDO-RS search (the feed keeps no query string or body: patient names may be in them)."""
    accession = values["accession"]
    for e in reversed(lab_saw(ctx, values, "find", "http")):
        if e.service == "http" and (e.get("method"), e.get("path")) in STUDY_SEARCHES:
            status = e.get("status")
            if isinstance(status, int) and status >= 400:
                return Seen(False, f"your {e.get('method')} {e.get('path')} reached the PACS, "
                            f"which answered HTTP {status}")  # fmt: skip
            return Seen(True, f"your {e.get('method')} {e.get('path')} arrive at the PACS from "
                        f"{e.calling}" + (f" (HTTP {status})" if status else ""))  # fmt: skip
        if e.service != "find":
            continue
        keys = dict(e.get("keys") or {})
        asked = f"your C-FIND from {e.calling} at level {e.get('level') or '?'}"
        if e.get("level") != "STUDY" or keys.get("AccessionNumber") != accession:
            return Seen(False, f"{asked} {matched(e, 'study')}: search at the STUDY level with "
                        f"AccessionNumber = {accession}")  # fmt: skip
        if e.get("matches") == 0:
            return Seen(False, f"{asked} by AccessionNumber {accession} matched no study")
        return Seen(True, f"{asked} by AccessionNumber {accession} {matched(e, 'study')}")
    return None


@action("find_study_cfind")
def find_study_cfind(ctx: LabContext) -> None:
    from dicomkit.dicom.scu import StudyQuery, find_studies

    accession = ctx.need("accession", 5)
    t0 = time.perf_counter()
    rows = find_studies(ctx.pacs, ctx.aet, StudyQuery(accession=accession), ctx.cfg.timeout)
    ms = (time.perf_counter() - t0) * 1000
    ctx.out.show(
        ui.table(
            f"{ok_mark(bool(rows))} Study Root C-FIND, AccessionNumber={accession}: "
            f"{len(rows)} study(ies) in {ms:.0f} ms",
            ["accession", "patient", "ID", "date", "modalities", "images", "Study Instance UID"],
            [[r["accession"], r["patient_name"], r["patient_id"], r["study_date"],
              r["modalities"], r["instances"], r["study_instance_uid"]] for r in rows],
        )
    )  # fmt: skip
    ctx.out.equivalent(
        f"findscu -S -aet {ctx.aet} -aec {ctx.pacs.aet} -k QueryRetrieveLevel=STUDY "
        f"-k AccessionNumber={shlex.quote(accession)} -k StudyInstanceUID= -k PatientName= "
        f"-k NumberOfStudyRelatedInstances= {ctx.pacs.host} {ctx.pacs.port}"
    )
    ctx.record(accession=accession, study_instance_uid=ctx.need("study_instance_uid", 5))


def rest_find_study(ctx: LabContext, accession: str) -> list[dict[str, Any]]:
    """Orthanc's REST API (the embedded PACS answers the same subset): POST /tools/find."""
    return rest_find(ctx, "Study", {"AccessionNumber": accession}, expand=True, probe=False)


@action("find_study_rest")
def find_study_rest(ctx: LabContext) -> None:
    import httpx

    accession = ctx.need("accession", 5)
    t0 = time.perf_counter()
    found = rest_find_study(ctx, accession)
    ms = (time.perf_counter() - t0) * 1000
    rows = []
    for s in found:
        tags = s.get("MainDicomTags", {})
        patient = s.get("PatientMainDicomTags", {})
        rows.append([s.get("ID", ""), tags.get("AccessionNumber", ""),
                     patient.get("PatientName", ""), tags.get("StudyInstanceUID", ""),
                     str(len(s.get("Series", [])))])  # fmt: skip
    ctx.out.show(
        ui.table(
            f"{ok_mark(bool(found))} POST /tools/find: {len(found)} study(ies) in {ms:.0f} ms",
            ["PACS study id", "accession", "patient", "Study Instance UID", "series"],
            rows,
        )
    )
    url = ctx.endpoints.pacs_url
    body = json.dumps({"Level": "Study", "Query": {"AccessionNumber": accession}, "Expand": True})
    ctx.out.equivalent(f"curl -sS -X POST {url}/tools/find -d {shlex.quote(body)}")
    if found:
        ctx.out.equivalent(f"curl -sS {url}/studies/{found[0].get('ID', '')}", "Then")
        ctx.record(pacs_study_id=str(found[0].get("ID", "")), accession=accession)
    try:
        explorer = httpx.get(f"{url}/app/explorer.html", timeout=ctx.cfg.timeout)
        has_explorer = explorer.status_code == 200
    except httpx.HTTPError:
        has_explorer = False
    if has_explorer:
        ctx.out.show(panel(f"Open [bold]{url}/app/explorer.html[/bold] in a browser and search "
                           f"for accession {accession}.", "Orthanc Explorer"))  # fmt: skip
    else:
        ctx.out.show(
            f"[muted]This engine's PACS has no Orthanc Explorer web UI; the REST API above "
            f"is what it offers ({url}/studies). The native and docker engines run "
            f"Orthanc, whose Explorer lives at /app/explorer.html.[/muted]"
        )
