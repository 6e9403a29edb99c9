"""Lesson 7, DICOMweb (PS3.18): QIDO-RS, WADO-RS, STOW-RS against the PACS's /dicom-web root,
the same endpoints Orthanc's DICOMweb plugin serves; the learner searches with curl."""

from __future__ import annotations

import hashlib
import shlex
import time
from pathlib import Path
from typing import Any

from dicomkit import ui
from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.show import ok_mark, panel, preview
from dicomkit.tutor.steps.lesson04_acquire_an_image import make_from_worklist
from dicomkit.tutor.watch_lab import json_answers, mentions, study_task_values, workdir


def _dicomweb_available(ctx: LabContext) -> bool:
    if ctx.endpoints.dicomweb:
        return True
    if not ctx.scratch.get("dicomweb_notice"):
        ctx.scratch["dicomweb_notice"] = True
        ctx.out.show(
            panel(
                f"The [bold]{ctx.engine}[/bold] engine's PACS has no DICOMweb yet, so this "
                "lesson cannot be done on this lab: its steps are skipped and it stays not "
                "done (verify never counts a skipped check).\n"
                "DICOMweb comes with Orthanc's DICOMweb plugin:\n"
                "  • native engine: [cmd]sudo apt install orthanc orthanc-dicomweb[/cmd], then\n"
                "    [cmd]dicomkit down && dicomkit up --engine native[/cmd]\n"
                "  • docker engine: [cmd]dicomkit down && dicomkit up --engine docker[/cmd]\n"
                "Then rerun the course from lesson 2 on that lab, or read on.",
                "No DICOMweb on this lab",
                "yellow",
            )
        )
    else:
        ctx.out.show("[muted]skipped: no DICOMweb on this lab[/muted]")
    return False


def dicomweb_client(ctx: LabContext) -> Any:
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=ctx.endpoints.dicomweb_url)


@action("dicomweb_qido")
def dicomweb_qido(ctx: LabContext) -> None:
    if not _dicomweb_available(ctx):
        return
    accession = ctx.need("accession", 5)
    client = dicomweb_client(ctx)
    t0 = time.perf_counter()
    studies = client.search_for_studies(search_filters={"AccessionNumber": accession})
    ms = (time.perf_counter() - t0) * 1000

    def val(d: dict[str, Any], tag: str) -> str:
        v = d.get(tag, {}).get("Value", [""])[0]
        return str(v.get("Alphabetic", "")) if isinstance(v, dict) else str(v)

    ctx.out.show(
        ui.table(
            f"{ok_mark(bool(studies))} QIDO-RS GET /studies?AccessionNumber={accession}: "
            f"{len(studies)} result(s) in {ms:.0f} ms (application/dicom+json)",
            ["0008,0050 accession", "0010,0010 patient", "0020,000D Study Instance UID"],
            [[val(s, "00080050"), val(s, "00100010"), val(s, "0020000D")] for s in studies],
        )
    )
    ctx.out.equivalent(
        f"curl -sS -H 'Accept: application/dicom+json' "
        f"'{ctx.endpoints.dicomweb_url}/studies?AccessionNumber={accession}'"
    )
    ctx.record(accession=accession, qido_matches=len(studies))


@action("dicomweb_wado")
def dicomweb_wado(ctx: LabContext) -> None:
    if not _dicomweb_available(ctx):
        return
    study = ctx.need("study_instance_uid", 4)
    series = ctx.need("series_instance_uid", 4)
    sop = ctx.need("sop_instance_uid", 4)
    client = dicomweb_client(ctx)
    t0 = time.perf_counter()
    ds = client.retrieve_instance(study, series, sop)
    ms_raw = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    png = client.retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
    ms_png = (time.perf_counter() - t0) * 1000
    base = f"{ctx.endpoints.dicomweb_url}/studies/{study}/series/{series}/instances/{sop}"
    rows = [
        ["GET .../instances/{sop}", "application/dicom", f"{ms_raw:.0f} ms",
         f"{ds.Rows}x{ds.Columns}, accession {ds.AccessionNumber}"],
        ["GET .../instances/{sop}/rendered", "image/png", f"{ms_png:.0f} ms", f"{len(png)} bytes"],
    ]  # fmt: skip
    ctx.out.show(ui.table(f"{ui.OK} WADO-RS retrieve", ["request", "media type", "time",
                                                        "got"], rows))  # fmt: skip
    out = workdir(ctx, "lesson-7") / f"{hashlib.sha256(sop.encode()).hexdigest()[:16]}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    from dicomkit.fsutil import atomic_write_bytes

    atomic_write_bytes(out, png)
    if ctx.out.colour:
        ctx.out.show(preview(png))
    ctx.out.show(f"[muted]Rendered PNG saved as {out}[/muted]")
    ctx.out.equivalent(f"curl -sS -H 'Accept: image/png' '{base}/rendered' -o image.png")
    ctx.record(rendered_png=str(out))


@action("dicomweb_stow")
def dicomweb_stow(ctx: LabContext) -> None:
    if not _dicomweb_available(ctx):
        return
    accession = ctx.need("accession", 5)
    ds = make_from_worklist(ctx, accession)
    ds.SeriesNumber = 2
    ds.SeriesDescription = "STOW-RS upload"
    client = dicomweb_client(ctx)
    t0 = time.perf_counter()
    answer = client.store_instances(datasets=[ds])
    ms = (time.perf_counter() - t0) * 1000
    refs = answer.get("ReferencedSOPSequence") or []
    failed = answer.get("FailedSOPSequence") or []
    rows = [[str(r.ReferencedSOPInstanceUID), "stored"] for r in refs]
    rows += [[str(r.ReferencedSOPInstanceUID), f"failed 0x{int(r.FailureReason):04X}"]
             for r in failed]  # fmt: skip
    ok = bool(refs) and not failed
    ctx.out.show(
        ui.table(
            f"{ok_mark(ok)} STOW-RS POST /studies: {ms:.0f} ms",
            ["SOP Instance UID", "result"],
            rows,
        )
    )
    # The same upload for curl: the instance as one part of a multipart/related body
    # (PS3.18 10.5.1), written where the printed command finds it.
    from io import BytesIO

    part = BytesIO()
    ds.save_as(part, enforce_file_format=True)
    body = workdir(ctx, "lesson-7") / "stow-body.mime"
    boundary = "DICOMKIT-STOW-BOUNDARY"
    body.write_bytes(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + part.getvalue()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    ctx.out.equivalent(
        f'curl -sS -X POST -H \'Content-Type: multipart/related; type="application/dicom"; '
        f"boundary={boundary}' --data-binary @{shlex.quote(str(body))} "
        f"{ctx.endpoints.dicomweb_url}/studies"
    )
    if not ok:
        raise DicomkitError("the STOW-RS upload was not stored", "see `dicomkit logs pacs`")
    ctx.record(
        stow_sop_instance_uid=str(ds.SOPInstanceUID), stow_study_uid=str(ds.StudyInstanceUID)
    )


def _prepare(ctx: LabContext) -> Values:
    return study_task_values(ctx, "lesson-7")


def _show_me(ctx: LabContext, values: Values) -> None:
    import json

    from dicomkit.fsutil import atomic_write_text

    found = dicomweb_client(ctx).search_for_studies(
        search_filters={"AccessionNumber": values["accession"]}
    )
    atomic_write_text(Path(values["workdir"]) / "qido.json", json.dumps(found, indent=2))


@task("qido-search", _prepare, _show_me, needs="dicomweb")
def qido_search(ctx: LabContext, values: Values) -> Seen | None:
    docs = json_answers(Path(values["workdir"]))
    if not docs:
        return None
    study = values["study_uid"]
    if any(mentions(doc, "0020000D") and mentions(doc, study) for doc in docs):
        return Seen(True, f"your QIDO-RS answer (DICOM JSON) names study {study}")
    return Seen(False, f"{len(docs)} JSON file(s) saved, none is a DICOM JSON answer naming "
                f"study {study}: ask /studies?AccessionNumber={values['accession']}")  # fmt: skip
