"""Lesson 8, break-fix: the tutor hands the learner a broken modality (shell scripts with DCMTK
commands in their own work folder: wrong called AE, unregistered calling AE, JPEG 2000 without a
context, station/date mismatch). The learner runs one, reads the error, fixes it; the tutor
watches the PACS (REST) and the answers for the result. The lab's configuration is untouched."""

from __future__ import annotations

import datetime as _dt
import shlex
from pathlib import Path

from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, task
from dicomkit.tutor.steps.lesson03_query_the_worklist import today, worklist_rows
from dicomkit.tutor.watch_lab import clear_answers, sop_in_pacs, workdir

ROGUE_AET = "ROGUE"  # a calling AE title the lab's PACS does not know
OTHER_STATION = "CT_ROOM_2"
J2K_FLAGS = {"1.2.840.10008.1.2.4.90": "-xv", "1.2.840.10008.1.2.4.91": "-xw"}  # storescu


def wrong_called_aet(ctx: LabContext) -> str:
    return "PACS" if ctx.endpoints.pacs_aet != "PACS" else "ORTHANC"


def _scene(ctx: LabContext, name: str) -> dict[str, str] | None:
    """The scenario this task set up earlier, unless the task was finished since."""
    tasks = ctx.progress.outcomes(8).get("tasks", {})
    scene = ctx.progress.outcomes(8).get(f"scene_{name}")
    if scene and tasks.get(name) not in ("done", "shown") and Path(scene["script"]).is_file():
        return dict(scene)
    return None


def _write_script(path: Path, why: str, command: str) -> None:
    from dicomkit.fsutil import atomic_write_text

    atomic_write_text(path, f"#!/bin/sh\n# {why}\n{command}\n")
    path.chmod(0o755)


def _base(ctx: LabContext) -> Values:
    return {"accession": str(ctx.need("accession", 2)), "workdir": str(workdir(ctx, "lesson-8"))}


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


@task("fix-called-ae", _prepare_called, _show_me_called)
def fix_called_ae(ctx: LabContext, values: Values) -> Seen | None:
    if not sop_in_pacs(ctx, values["sop"]):
        return None
    return Seen(True, f"the PACS stored {Path(values['image']).name} (SOP Instance "
                f"{values['sop']}): the called AE title is right now",
                {"l8_sop_instance_uid": values["sop"]})  # fmt: skip


# ---- 2. an unregistered calling AE title -----------------------------------------------------


def _prepare_calling(ctx: LabContext) -> Values:
    scene = _scene(ctx, "fix-calling-ae")
    if scene:
        clear_answers(Path(scene["answers"]))
        return scene
    values = _base(ctx)
    answers = Path(values["workdir"]) / "worklist"
    answers.mkdir(exist_ok=True)
    clear_answers(answers)
    script = Path(values["workdir"]) / "morning-worklist.sh"
    m = ctx.mwl
    _write_script(script, "The new room's morning worklist query. Its AE title was never "
                  "registered at the PACS.",
                  f"findscu -W -v -aet {ROGUE_AET} -aec {m.aet} "
                  f"-k AccessionNumber={shlex.quote(values['accession'])} -k PatientName= "
                  "-k 'ScheduledProcedureStepSequence[0].ScheduledStationAETitle=' "
                  f"-X -od {shlex.quote(str(answers))} {m.host} {m.port}")  # fmt: skip
    values |= {"script": str(script), "answers": str(answers)}
    ctx.record(**{"scene_fix-calling-ae": values})
    return values


def _answers_json(ctx: LabContext, folder: Path, station: str, date: str, accession: str) -> None:
    import json

    from dicomkit.dicom.scu import find_worklist
    from dicomkit.dicom.worklist import WorklistQuery
    from dicomkit.fsutil import atomic_write_text

    query = WorklistQuery(accession=accession, station_aet=station, date=date)
    rows = find_worklist(ctx.mwl, ctx.aet, query, ctx.cfg.timeout)
    atomic_write_text(folder / "answers.json", json.dumps({"matches": rows}, indent=2))


def _show_me_calling(ctx: LabContext, values: Values) -> None:
    _fix(values, f"-aet {ROGUE_AET} ", f"-aet {ctx.aet} ")
    _answers_json(ctx, Path(values["answers"]), "", "", values["accession"])


def _answers_seen(values: Values, folder: Path, what: str) -> Seen | None:
    rows = worklist_rows(folder)
    if not rows:
        return None
    if any(r["accession"] == values["accession"] for r in rows):
        return Seen(True, f"{what}: the worklist answered with your order {values['accession']}")
    return Seen(False, f"{len(rows)} answer(s), none for your order {values['accession']}")


@task("fix-calling-ae", _prepare_calling, _show_me_calling)
def fix_calling_ae(ctx: LabContext, values: Values) -> Seen | None:
    return _answers_seen(values, Path(values["answers"]), "the morning query works")


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


@task("fix-j2k", _prepare_j2k, _show_me_j2k)
def fix_j2k(ctx: LabContext, values: Values) -> Seen | None:
    if not sop_in_pacs(ctx, values["sop"]):
        return None
    return Seen(True, f"the PACS stored the JPEG 2000 file (SOP Instance {values['sop']}) in its "
                "own transfer syntax", {"j2k_study_uid": values["study_uid"],
                                        "j2k_sop_instance_uid": values["sop"]})  # fmt: skip


# ---- 4. the worklist is empty: station and date ----------------------------------------------


def _prepare_empty(ctx: LabContext) -> Values:
    scene = _scene(ctx, "fix-empty-worklist")
    if scene:
        clear_answers(Path(scene["answers"]))
        return scene | {"today": today()}
    values = _base(ctx)
    answers = Path(values["workdir"]) / "today"
    answers.mkdir(exist_ok=True)
    clear_answers(answers)
    yesterday = (_dt.date.today() - _dt.timedelta(days=1)).strftime("%Y%m%d")
    script = Path(values["workdir"]) / "todays-patients.sh"
    m = ctx.mwl
    sps = "ScheduledProcedureStepSequence[0]"
    _write_script(script, "This room's worklist for today. It comes back empty.",
                  f"findscu -W -v -aet {ctx.aet} -aec {m.aet} "
                  f"-k '{sps}.ScheduledStationAETitle={OTHER_STATION}' "
                  f"-k '{sps}.ScheduledProcedureStepStartDate={yesterday}' "
                  "-k AccessionNumber= -k PatientName= "
                  f"-X -od {shlex.quote(str(answers))} {m.host} {m.port}")  # fmt: skip
    values |= {"script": str(script), "answers": str(answers), "yesterday": yesterday,
               "today": today()}  # fmt: skip
    ctx.record(**{"scene_fix-empty-worklist": values})
    return values


def _show_me_empty(ctx: LabContext, values: Values) -> None:
    _fix(values, f"={OTHER_STATION}'", f"={ctx.aet}'")
    _fix(values, f"={values['yesterday']}'", f"={values['today']}'")
    _answers_json(ctx, Path(values["answers"]), ctx.aet, values["today"], "")


@task("fix-empty-worklist", _prepare_empty, _show_me_empty)
def fix_empty_worklist(ctx: LabContext, values: Values) -> Seen | None:
    return _answers_seen(values, Path(values["answers"]), "station and date match now")
