"""Lesson 4, acquire an image: the learner makes it from the worklist item (dicomkit make-image);
the tutor reads the file and compares its identifiers with the item (IHE RAD SWF)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from dicomkit import ui
from dicomkit.errors import DicomkitError
from dicomkit.tutor.context import LabContext
from dicomkit.tutor.registry import Seen, Values, action, task
from dicomkit.tutor.show import tag
from dicomkit.tutor.watch_lab import workdir

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def worklist_answer(ctx: LabContext, accession: str) -> Dataset:
    from dicomkit.dicom.scu import find_worklist_datasets
    from dicomkit.dicom.worklist import WorklistQuery

    items = find_worklist_datasets(ctx.mwl, ctx.aet, WorklistQuery(accession=accession))
    if not items:
        raise DicomkitError(
            f"the worklist has no item for accession {accession}",
            "rerun `dicomkit lesson 2` to place a new order",
        )
    return items[0]


def make_from_worklist(ctx: LabContext, accession: str) -> Dataset:
    from dicomkit.dicom.image import make_image

    return make_image(worklist_answer(ctx, accession), station_aet=ctx.aet)


def _prepare(ctx: LabContext) -> Values:
    accession = str(ctx.need("accession", 2))
    image = workdir(ctx, "lesson-4") / f"{accession}.dcm"
    return {"accession": accession, "image": str(image)}


def _show_me(ctx: LabContext, values: Values) -> None:
    from dicomkit.dicom.image import save_image

    save_image(make_from_worklist(ctx, values["accession"]), Path(values["image"]))


@task("make-image", _prepare, _show_me)
def make_image_task(ctx: LabContext, values: Values) -> Seen | None:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    path = Path(values["image"])
    if not path.is_file():
        return None
    try:
        ds = dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError) as exc:
        return Seen(False, f"{path.name} is not a DICOM file ({exc})")
    item = worklist_answer(ctx, values["accession"])
    keys = ("AccessionNumber", "PatientID", "PatientName", "StudyInstanceUID")
    bad = [k for k in keys if str(ds.get(k, "")) != str(item.get(k, ""))]
    if bad:
        return Seen(False, f"{path.name} does not carry the worklist item's {', '.join(bad)}: "
                    "make it from the item instead of typing")  # fmt: skip
    return Seen(True, f"{path.name}: accession {ds.AccessionNumber}, patient {ds.PatientName}, "
                "Study Instance UID as in the worklist item", {
                    "accession": values["accession"], "image_file": str(path),
                    "sop_instance_uid": str(ds.SOPInstanceUID),
                    "sop_class_uid": str(ds.SOPClassUID),
                    "series_instance_uid": str(ds.SeriesInstanceUID),
                    "study_instance_uid": str(ds.StudyInstanceUID),
                    "patient_id": str(ds.PatientID)})  # fmt: skip


@action("compare_image")
def compare_image(ctx: LabContext) -> None:
    from pydicom import dcmread

    from dicomkit.dicom.image import COPIED

    accession = str(ctx.need("accession", 4, own=True))
    path = Path(ctx.need("image_file", 4, own=True))
    item, ds = worklist_answer(ctx, accession), dcmread(path, stop_before_pixels=True)
    rows = []
    for key in COPIED:
        if key in ("SeriesInstanceUID", "SOPInstanceUID") or (
            key == "SpecificCharacterSet" and key not in item
        ):
            continue  # new UIDs are made by the modality, never copied
        a, b = str(item.get(key, "")), str(ds.get(key, ""))
        rows.append([key, tag(key), a, b, "copied ✓" if a == b else "DIFFERENT ✗"])
    if "RequestAttributesSequence" in ds:
        req = ds.RequestAttributesSequence[0]
        rows.append(["RequestAttributesSequence", tag("RequestAttributesSequence"), "",
                     f"accession {req.get('AccessionNumber', '')}, SPS "
                     f"{req.get('ScheduledProcedureStepID', '')}", "link to the order"])  # fmt: skip
    ctx.out.show(ui.table("Identifiers copied from the worklist item",
                          ["attribute", "tag", "worklist item", "image", ""], rows))  # fmt: skip
    new = [[key, tag(key), str(ds.get(key, ""))] for key in ("SeriesInstanceUID", "SOPInstanceUID")]
    ctx.out.show(ui.table("Made new by the modality (never copied)",
                          ["attribute", "tag", "image"], new))  # fmt: skip
    ctx.out.equivalent(f"dcmdump {shlex.quote(str(path))}", "Inspect it")
