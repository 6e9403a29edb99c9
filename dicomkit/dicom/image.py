"""Make an image the way a modality does: from the worklist item it was scheduled with.

The identifiers that tie the image to the order are copied, not retyped (IHE Scheduled
Workflow): patient, accession, Study Instance UID, requested procedure and step. Series and
SOP Instance UIDs are new. Pixels are drawn with Pillow and carry a visible label. The IOD
follows the ordered modality (dicom/iods.py).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING

from dicomkit.dicom.anatomy import anatomy_of
from dicomkit.dicom.iods import CR_IMAGE_STORAGE, SC_IMAGE_STORAGE, iod_for
from dicomkit.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["COPIED", "CR_IMAGE_STORAGE", "SC_IMAGE_STORAGE", "make_image", "save_image"]

# Attributes copied from the worklist item (PS3.17 / IHE RAD TF-2 Table 4.8-1 mapping).
COPIED = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyInstanceUID",
    "ReferringPhysicianName",
)


def _pixels(rows: int, cols: int, lines: list[str]) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (cols, rows), 0)
    draw = ImageDraw.Draw(img)
    # A soft "chest-like" gradient so the image is not just black, then the label.
    for y in range(rows):
        shade = int(40 + 60 * (1 - abs(y - rows / 2) / (rows / 2)))
        draw.line([(0, y), (cols, y)], fill=shade)
    draw.ellipse([cols * 0.18, rows * 0.2, cols * 0.47, rows * 0.85], fill=150)
    draw.ellipse([cols * 0.53, rows * 0.2, cols * 0.82, rows * 0.85], fill=150)
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=20)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    y = 10
    for line in lines:
        draw.text((12, y), line, fill=255, font=font)
        y += 26
    return img.tobytes()


def make_image(
    item: Dataset, *, rows: int = 512, cols: int = 512, station_aet: str = "DICOMKIT"
) -> Dataset:
    """Build the image a modality of the scheduled kind would make (its IOD: dicom/iods.py)
    from an MWL answer."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

    sps_seq = item.get("ScheduledProcedureStepSequence") or [Dataset()]
    sps = sps_seq[0]
    modality = str(sps.get("Modality", "") or "OT")
    iod = iod_for(modality)
    sop_class = iod.sop_class
    now = _dt.datetime.now()

    ds = Dataset()
    for key in COPIED:
        if key in item:
            ds[key] = item[key]
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"):
        if key not in ds:
            setattr(ds, key, "")
    if not ds.get("StudyInstanceUID"):
        raise ValueError("the worklist item has no StudyInstanceUID (Type 1 in PS3.4 Table K.6-1)")
    desc = str(
        item.get("RequestedProcedureDescription", "")
        or sps.get("ScheduledProcedureStepDescription", "")
    )
    ds.StudyDescription = desc
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.StudyID = str(item.get("RequestedProcedureID", ""))[:16]
    if "RequestedProcedureCodeSequence" in item:
        ds.ProcedureCodeSequence = item.RequestedProcedureCodeSequence
    # Request Attributes Sequence: the link back to the order (IHE SWF).
    req = Dataset()
    req.AccessionNumber = ds.AccessionNumber
    req.RequestedProcedureID = str(item.get("RequestedProcedureID", ""))
    req.ScheduledProcedureStepID = str(sps.get("ScheduledProcedureStepID", ""))
    req.ScheduledProcedureStepDescription = str(sps.get("ScheduledProcedureStepDescription", ""))
    req.StudyInstanceUID = ds.StudyInstanceUID
    ds.RequestAttributesSequence = [req]
    ds.PerformedProcedureStepStartDate = ds.StudyDate
    ds.PerformedProcedureStepStartTime = ds.StudyTime
    ds.PerformedProcedureStepDescription = desc

    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = ds.StudyTime
    ds.SeriesDescription = desc
    code = (item.get("RequestedProcedureCodeSequence") or [Dataset()])[0]
    where = anatomy_of(f"{desc} {code.get('CodeMeaning', '')}")
    if where.body_part or modality == "CR":
        ds.BodyPartExamined = where.body_part  # Type 3; Type 2 in the CR Series module
    if where.laterality is not None:
        ds.Laterality = where.laterality  # Type 2C: a paired or unknown body part
    ds.Manufacturer = "dicomkit"  # General Equipment, Type 2
    ds.ManufacturerModelName = "dicomkit make-image"
    ds.SoftwareVersions = _version()
    ds.StationName = station_aet[:16]
    ds.InstitutionName = "dicomkit lab"

    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 1
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.AcquisitionDate = ds.StudyDate
    ds.AcquisitionTime = ds.StudyTime
    ds.BurnedInAnnotation = "YES"  # the label below names the patient (PS3.3 C.7.6.1)
    ds.Rows = rows
    ds.Columns = cols
    label = [
        "dicomkit lab - synthetic image",
        f"Patient: {_ascii(ds.PatientName)}  ID: {ds.PatientID}",
        f"Accession: {ds.AccessionNumber}   {modality}",
        f"{_ascii(desc)}",
        now.strftime("%Y-%m-%d %H:%M:%S"),
    ]
    iod.fill(ds, _pixels(rows, cols, label))

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dicomkit")
    except PackageNotFoundError:
        return "unknown"


def _ascii(value: object) -> str:
    # Pillow's default bitmap font covers Latin-1; keep the label readable for any name.
    text = str(value)
    return text.encode("latin-1", "replace").decode("latin-1")


def save_image(ds: Dataset, path: Path) -> Path:
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
