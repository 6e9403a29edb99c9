"""Lesson 13, de-identify for research: the learner makes a de-identified copy of the lesson 5
study (`dicomkit anonymize`, PS3.15 Annex E Basic Profile); the tutor watches the folder for it,
then compares the original with the copy: what was removed, kept and replaced."""

from __future__ import annotations

import shlex
from pathlib import Path

from dicomkit import ui
from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.watch_lab import workdir

# (keyword, what PS3.15 Table E.1-1 / E.1.1 says happens to it in the Basic Profile)
COMPARED: tuple[tuple[str, str], ...] = (
    ("PatientName", "Z: emptied, or a dummy value"),
    ("PatientID", "Z: emptied, or a dummy value"),
    ("PatientBirthDate", "Z: emptied, or a dummy value"),
    ("AccessionNumber", "Z: emptied, or a dummy value"),
    ("StudyDate", "Z: emptied, or a dummy value"),
    ("InstitutionName", "X/Z/D: removed, emptied, or a dummy value"),
    ("StudyInstanceUID", "replaced by a new UID (U), the same across the study"),
    ("SOPInstanceUID", "replaced by a new UID (U)"),
    ("Modality", "kept: not identifying"),
    ("PatientIdentityRemoved", "added: YES (E.1.1)"),
    ("DeidentificationMethod", "added: how it was done (E.1.1)"),
)


IDENTIFIERS = ("PatientName", "PatientID", "StudyInstanceUID", "SOPInstanceUID")


def _original(ctx: LabContext) -> Path:
    path = Path(ctx.need("image_file", 4))
    if not path.is_file():
        raise DicomkitError(f"the lesson 4 image {path} is gone", "rerun `dicomkit lesson 4`")
    return path


def _prepare(ctx: LabContext) -> Values:
    folder = workdir(ctx, "lesson-13")
    for p in folder.glob("*"):
        if p.is_file():
            p.unlink()
    from pydicom import dcmread

    original = dcmread(_original(ctx), stop_before_pixels=True)
    ctx.record(anon_original={k: str(original.get(k, "")) for k in IDENTIFIERS})
    return {"accession": str(ctx.need("accession", 5)), "workdir": str(folder),
            "study_uid": str(ctx.need("study_instance_uid", 5))}  # fmt: skip


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.anonymize import anonymize_files

    anonymize_files([_original(ctx)], Path(values["workdir"]))


@task("anonymize-study", _prepare, _show_me)
def anonymize_study(ctx: LabContext, values: Values) -> Seen | None:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    for p in sorted(Path(values["workdir"]).glob("*")):
        try:
            ds = dcmread(p, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError, IsADirectoryError):
            continue
        if (
            ds.get("PatientIdentityRemoved") == "YES"
            and ds.get("StudyInstanceUID") != values["study_uid"]
        ):
            return Seen(True, f"a de-identified copy {p.name}: PatientIdentityRemoved YES, a new "
                        "Study Instance UID", {"anon_file": str(p)})  # fmt: skip
    return None


@action("compare_deidentified")
def compare_deidentified(ctx: LabContext) -> None:
    from pydicom import dcmread

    original = dcmread(_original(ctx), stop_before_pixels=True)
    anon_path = Path(ctx.need("anon_file", 13, own=True))
    anon = dcmread(anon_path, stop_before_pixels=True)
    rows = [[k, str(original.get(k, "(absent)")), str(anon.get(k, "(absent)")), why]
            for k, why in COMPARED]  # fmt: skip
    ctx.out.show(ui.table("Original (lesson 4) and de-identified copy",
                          ["attribute", "original", "copy", "Basic Profile"], rows))  # fmt: skip
    ctx.out.equivalent(f"dcmdump +P PatientName +P PatientIdentityRemoved +P "
                       f"DeidentificationMethod {shlex.quote(str(anon_path))}",
                       "The copy's header, by hand")  # fmt: skip
