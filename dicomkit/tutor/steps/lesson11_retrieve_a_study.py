"""Lesson 11, retrieve a study: the tutor hands over a workstation's C-MOVE script whose
destination AE the PACS does not know (PS3.4 C.4.2.1.5: 0xA801, Orthanc 1.10: 0xC000); the learner
fixes it and the tutor watches the folder for the study. Then the tutor shows C-GET (PS3.4 C.4.3)."""

from __future__ import annotations

import shlex
from pathlib import Path

from dicomkit import ui
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.watch_lab import workdir

UNKNOWN_AE = "WORKSTATION"  # an AE title no PACS in the lab has been told about


def _study_files(folder: Path, study_uid: str) -> list[Path]:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    out = []
    for p in sorted(folder.glob("*")):
        if not p.is_file():
            continue
        try:
            ds = dcmread(p, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue  # still being written; the next look sees it whole
        if str(ds.get("StudyInstanceUID", "")) == study_uid:
            out.append(p)
    return out


def _prepare(ctx: LabContext) -> Values:
    from dicomkit.fsutil import atomic_write_text

    tasks = ctx.progress.outcomes(11).get("tasks", {})
    scene = ctx.progress.outcomes(11).get("scene_fix-move")
    if scene and tasks.get("fix-move") not in ("done", "shown") and Path(scene["script"]).is_file():
        return dict(scene)
    ep = ctx.endpoints
    study = str(ctx.need("study_instance_uid", 5))
    folder = workdir(ctx, "lesson-11") / "moved"
    folder.mkdir(parents=True, exist_ok=True)
    for p in folder.glob("*"):
        if p.is_file():
            p.unlink()
    script = workdir(ctx, "lesson-11") / "fetch-prior.sh"
    command = (f"movescu -v -S -aet {ctx.aet} -aec {ep.pacs_aet} -aem {UNKNOWN_AE} "
               f"--port {ep.retrieve_port} -k QueryRetrieveLevel=STUDY -k StudyInstanceUID={study} "
               f"-od {shlex.quote(str(folder))} {ep.host} {ep.dicom_port}")  # fmt: skip
    atomic_write_text(script, "#!/bin/sh\n# The reading room's 'fetch the prior study' button: "
                      "it moves the study to this workstation.\n" + command + "\n")  # fmt: skip
    script.chmod(0o755)
    values = {"script": str(script), "workdir": str(folder), "study_uid": study,
              "retrieve_port": str(ep.retrieve_port)}  # fmt: skip
    ctx.record(**{"scene_fix-move": values})
    return values


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.retrieve import retrieve

    script = Path(values["script"])
    script.write_text(script.read_text().replace(
        f"-aem {UNKNOWN_AE} ", f"-aem {ctx.aet} "))  # fmt: skip
    retrieve(ctx.pacs, ctx.aet, Path(values["workdir"]), study_uid=values["study_uid"],
             listen_host=ctx.endpoints.listen_address, listen_port=ctx.endpoints.retrieve_port,
             timeout=ctx.cfg.timeout)  # fmt: skip


@task("fix-move", _prepare, _show_me)
def fix_move(ctx: LabContext, values: Values) -> Seen | None:
    found = _study_files(Path(values["workdir"]), values["study_uid"])
    if not found:
        return None
    return Seen(True, f"{len(found)} instance(s) of study {values['study_uid']} arrive in "
                f"{values['workdir']} by C-MOVE", {"moved_file": str(found[0]),
                "moved_study_uid": values["study_uid"]})  # fmt: skip


@action("retrieve_get")
def retrieve_get(ctx: LabContext) -> None:
    from dicomkit.dicom.retrieve import retrieve

    study = str(ctx.need("study_instance_uid", 5))
    folder = workdir(ctx, "lesson-11") / "got"
    report = retrieve(ctx.pacs, ctx.aet, folder, study_uid=study, use_get=True,
                      timeout=ctx.cfg.timeout)  # fmt: skip
    ctx.out.show(f"{ui.OK} C-GET {ctx.pacs}: {report.status_name}; {report.completed} "
                 f"instance(s) came back on the tutor's own association into {folder}.")  # fmt: skip
    ep = ctx.endpoints
    ctx.out.equivalent(f"getscu -v -S -aet {ctx.aet} -aec {ep.pacs_aet} -k QueryRetrieveLevel="
                       f"STUDY -k StudyInstanceUID={study} -od {shlex.quote(str(folder))} "
                       f"{ep.host} {ep.dicom_port}", "C-GET with DCMTK")  # fmt: skip
