"""Lesson 8, break-fix: the tutor hands the learner a broken modality (shell scripts with DCMTK
commands in their own work folder: wrong called AE, unregistered calling AE, JPEG 2000 without a
context, station/date mismatch). The learner runs one, reads the error, fixes it; the tutor
watches what the PACS and the worklist saw when the script ran (the lab's event feed: rejected
associations, refused or empty C-FINDs, the C-STORE of the image). The lab's configuration is
untouched."""

from __future__ import annotations

import datetime as _dt
import shlex
from pathlib import Path

from dicomkit.errors import DicomkitError
from dicomkit.labevents import LabEvent
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, task
from dicomkit.tutor.steps.lesson03_query_the_worklist import judge_worklist_find, today
from dicomkit.tutor.watch_lab import (
    age_s,
    lab_saw,
    matched,
    rejected_association,
    status_text,
    watch_from_now,
    workdir,
)

ROGUE_AET = "ROGUE"  # a calling AE title the lab's PACS does not know
OTHER_STATION = "CT_ROOM_2"
ASSOCIATION_GRACE_S = 3.0  # an association seen without its C-FIND yet: wait this long to judge
J2K_FLAGS = {"1.2.840.10008.1.2.4.90": "-xv", "1.2.840.10008.1.2.4.91": "-xw"}  # storescu


def wrong_called_aet(ctx: LabContext) -> str:
    return "PACS" if ctx.endpoints.pacs_aet != "PACS" else "ORTHANC"


def _scene(ctx: LabContext, name: str) -> dict[str, str] | None:
    """The scenario this task set up earlier, unless the task was finished since; the tutor
    watches the lab from now on."""
    tasks = ctx.progress.outcomes(8).get("tasks", {})
    scene = ctx.progress.outcomes(8).get(f"scene_{name}")
    if scene and tasks.get(name) not in ("done", "shown") and Path(scene["script"]).is_file():
        return dict(scene) | watch_from_now(ctx)
    return None


def _write_script(path: Path, why: str, command: str) -> None:
    from dicomkit.fsutil import atomic_write_text

    atomic_write_text(path, f"#!/bin/sh\n# {why}\n{command}\n")
    path.chmod(0o755)


def _base(ctx: LabContext) -> Values:
    return {"accession": str(ctx.need("accession", 2)), "workdir": str(workdir(ctx, "lesson-8")),
            **watch_from_now(ctx)}  # fmt: skip


def _stored(ctx: LabContext, values: Values, what: str) -> Seen | None:
    """The C-STORE of the scene's image the PACS saw, or the association it turned away."""
    events = lab_saw(ctx, values, "association", "store")
    for e in reversed(events):
        if e.service == "store" and e.get("sop_instance_uid") == values["sop"]:
            status = e.get("status")
            said = f"a C-STORE of {what} (SOP Instance {values['sop']}) arrive at the PACS from "
            said += f"calling AE {e.calling} to called AE {e.called}"
            if status != 0:
                return Seen(False, f"{said}, answered {status_text(status)}")
            return Seen(True, f"{said}; it answered {status_text(status)}")
    return rejected_association(ctx, events)


def _fix(values: Values, old: str, new: str) -> None:
    """--show-me: the tutor edits the script the way the learner would."""
    path = Path(values["script"])
    path.write_text(path.read_text().replace(old, new))


# ---- 1. the wrong called AE title ------------------------------------------------------------


def _prepare_called(ctx: LabContext) -> Values:
    scene = _scene(ctx, "fix-called-ae")
    if scene:
        return scene
    from dicomkit.dicom.image import save_image
    from dicomkit.tutor.steps.lesson04_acquire_an_image import make_from_worklist

    values = _base(ctx)
    folder = Path(values["workdir"])
    ds = make_from_worklist(ctx, values["accession"])
    image = save_image(ds, folder / "next-image.dcm")
    script = folder / "send-image.sh"
    p = ctx.pacs
    _write_script(script, "The modality's send button: it worked until the PACS was replaced.",
                  f"storescu -v -aet {ctx.aet} -aec {wrong_called_aet(ctx)} {p.host} {p.port} "
                  f"{shlex.quote(str(image))}")  # fmt: skip
    values |= {"script": str(script), "image": str(image), "sop": str(ds.SOPInstanceUID)}
    ctx.record(**{"scene_fix-called-ae": values})
    return values


def _show_me_called(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.scu import store_files

    _fix(values, f"-aec {wrong_called_aet(ctx)} ", f"-aec {ctx.pacs.aet} ")
    report = store_files(ctx.pacs, ctx.aet, [Path(values["image"])], timeout=ctx.cfg.timeout)
    if report.failed:
        raise DicomkitError("the PACS did not store the image", "see `dicomkit logs pacs`")


@task("fix-called-ae", _prepare_called, _show_me_called, needs="events")
def fix_called_ae(ctx: LabContext, values: Values) -> Seen | None:
    seen = _stored(ctx, values, Path(values["image"]).name)
    if seen is None or not seen.ok:
        return seen
    return Seen(True, f"{seen.text}: the called AE title is right now",
                {"l8_sop_instance_uid": values["sop"]})  # fmt: skip


# ---- 2. an unregistered calling AE title -----------------------------------------------------


def _prepare_calling(ctx: LabContext) -> Values:
    scene = _scene(ctx, "fix-calling-ae")
    if scene:
        return scene
    values = _base(ctx)
    script = Path(values["workdir"]) / "morning-worklist.sh"
    m = ctx.mwl
    _write_script(script, "The new room's morning worklist query. Its AE title was never "
                  "registered at the PACS.",
                  f"findscu -W -v -aet {ROGUE_AET} -aec {m.aet} "
                  f"-k AccessionNumber={shlex.quote(values['accession'])} -k PatientName= "
                  "-k 'ScheduledProcedureStepSequence[0].ScheduledStationAETitle=' "
                  f"{m.host} {m.port}")  # fmt: skip
    values |= {"script": str(script)}
    ctx.record(**{"scene_fix-calling-ae": values})
    return values


def _query(ctx: LabContext, station: str, date: str, accession: str) -> None:
    """--show-me: the fixed script's worklist C-FIND, sent by the tutor."""
    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery

    query = WorklistQuery(accession=accession, station_aet=station, date=date)
    find_worklist(ctx.mwl, ctx.aet, query, ctx.cfg.timeout)


def _show_me_calling(ctx: LabContext, values: Values) -> None:
    _fix(values, f"-aet {ROGUE_AET} ", f"-aet {ctx.aet} ")
    _query(ctx, "", "", values["accession"])


def _served(events: list[LabEvent], calling: str) -> bool:
    return any(e.service == "mwl-find" and e.calling == calling for e in events)


@task("fix-calling-ae", _prepare_calling, _show_me_calling, needs="events")
def fix_calling_ae(ctx: LabContext, values: Values) -> Seen | None:
    """The worklist C-FIND the worklist answered, or the refusal it gave the unknown AE."""
    events = lab_saw(ctx, values, "association", "mwl-find")
    if not events:
        return None
    e = events[-1]
    accession = values["accession"]
    if e.service == "association":
        if e.get("accepted") is False:
            return rejected_association(ctx, [e])
        if _served(events, e.calling) or age_s(e) < ASSOCIATION_GRACE_S:
            return None  # its C-FIND may still be on its way into the feed
        # Orthanc aborts a worklist C-FIND from an AE it does not know: no C-FIND event.
        return Seen(False, f"an association from calling AE {e.calling}, and no worklist "
                    "C-FIND answered on it")  # fmt: skip
    asked = f"the worklist C-FIND from {e.calling}"
    status = e.get("status")
    if isinstance(status, int) and status != 0:
        return Seen(False, f"the worklist refuse the C-FIND from calling AE {e.calling} "
                    f"({status_text(status, 'find')})")  # fmt: skip
    if (e.get("keys") or {}).get("AccessionNumber") != accession or not e.get("matches"):
        return Seen(False, f"{asked} {matched(e)}: ask for your order {accession}")
    return Seen(True, f"{asked} answered: it {matched(e)}, your order {accession}; the morning "
                "query works")  # fmt: skip


# ---- 3. a JPEG 2000 file and no presentation context -----------------------------------------


def j2k_source() -> Path:
    from pydicom.data import get_testdata_file

    found = get_testdata_file("JPEG2000.dcm")
    if found is None:
        raise DicomkitError("pydicom's JPEG2000.dcm test file is missing", "reinstall pydicom")
    return Path(str(found))


def _prepare_j2k(ctx: LabContext) -> Values:
    scene = _scene(ctx, "fix-j2k")
    if scene:
        return scene
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    values = _base(ctx)
    ds = dcmread(j2k_source())
    # New UIDs, same compressed pixels: this copy is not in the PACS yet.
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    j2k = Path(values["workdir"]) / "ultrasound-j2k.dcm"
    ds.save_as(j2k)
    flag = J2K_FLAGS.get(str(ds.file_meta.TransferSyntaxUID), "-xw")
    script = Path(values["workdir"]) / "send-j2k.sh"
    p = ctx.pacs
    _write_script(script, "Forward a JPEG 2000 image from the ultrasound to the PACS.",
                  f"storescu -v -aet {ctx.aet} -aec {p.aet} {p.host} {p.port} "
                  f"{shlex.quote(str(j2k))}")  # fmt: skip
    values |= {"script": str(script), "j2k": str(j2k), "j2k_flag": flag,
               "sop": str(ds.SOPInstanceUID), "study_uid": str(ds.StudyInstanceUID)}  # fmt: skip
    ctx.record(**{"scene_fix-j2k": values})
    return values


def _show_me_j2k(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.scu import store_files

    _fix(values, "storescu -v ", f"storescu -v {values['j2k_flag']} ")
    report = store_files(ctx.pacs, ctx.aet, [Path(values["j2k"])], timeout=ctx.cfg.timeout)
    if report.failed:
        raise DicomkitError("the PACS did not store the JPEG 2000 file", "see `dicomkit logs pacs`")


@task("fix-j2k", _prepare_j2k, _show_me_j2k, needs="events")
def fix_j2k(ctx: LabContext, values: Values) -> Seen | None:
    seen = _stored(ctx, values, "the JPEG 2000 file")
    if seen is None or not seen.ok:
        return seen
    return Seen(True, f"{seen.text}, in the file's own transfer syntax",
                {"j2k_study_uid": values["study_uid"], "j2k_sop_instance_uid": values["sop"]})  # fmt: skip


# ---- 4. the worklist is empty: station and date ----------------------------------------------


def _prepare_empty(ctx: LabContext) -> Values:
    scene = _scene(ctx, "fix-empty-worklist")
    if scene:
        return scene | {"today": today()}
    values = _base(ctx)
    yesterday = (_dt.date.today() - _dt.timedelta(days=1)).strftime("%Y%m%d")
    script = Path(values["workdir"]) / "todays-patients.sh"
    m = ctx.mwl
    sps = "ScheduledProcedureStepSequence[0]"
    _write_script(script, "This room's worklist for today. It comes back empty.",
                  f"findscu -W -v -aet {ctx.aet} -aec {m.aet} "
                  f"-k '{sps}.ScheduledStationAETitle={OTHER_STATION}' "
                  f"-k '{sps}.ScheduledProcedureStepStartDate={yesterday}' "
                  f"-k AccessionNumber= -k PatientName= {m.host} {m.port}")  # fmt: skip
    values |= {"script": str(script), "yesterday": yesterday, "today": today()}
    ctx.record(**{"scene_fix-empty-worklist": values})
    return values


def _show_me_empty(ctx: LabContext, values: Values) -> None:
    _fix(values, f"={OTHER_STATION}'", f"={ctx.aet}'")
    _fix(values, f"={values['yesterday']}'", f"={values['today']}'")
    _query(ctx, ctx.aet, values["today"], "")


@task("fix-empty-worklist", _prepare_empty, _show_me_empty, needs="events")
def fix_empty_worklist(ctx: LabContext, values: Values) -> Seen | None:
    finds = lab_saw(ctx, values, "mwl-find")
    if not finds:
        return None
    seen = judge_worklist_find(ctx, finds[-1], ctx.aet, values["today"])
    return Seen(True, f"{seen.text}: station and date match now") if seen.ok else seen
