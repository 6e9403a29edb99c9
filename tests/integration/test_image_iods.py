"""Images made for each modality the RIS accepts are valid IODs in dciodvfy's eyes.

dciodvfy (David Clunie's dicom3tools, Debian ``dicom3tools``) is the reference IOD checker:
an image must give no "Error" line. Warnings are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicomkit.dicom.anatomy import Anatomy, anatomy_of
from dicomkit.dicom.image import make_image, save_image
from dicomkit.dicom.worklist import build_item
from dicomkit.ris.models import OrderIn, OrderOut

pytestmark = pytest.mark.dicom3tools

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
CR = "1.2.840.10008.5.1.4.1.1.1"
SC = "1.2.840.10008.5.1.4.1.1.7"
US = "1.2.840.10008.5.1.4.1.1.6.1"

ORDERS = {
    "CR": ("XR CHEST", CR),
    "CT": ("CT HEAD", CT),
    "MR": ("MR KNEE LEFT", MR),
    "DX": ("XR HAND", SC),
    "US": ("US ABDOMEN", US),
    "MG": ("MAMMO SCREENING", SC),
    "NM": ("NM BONE SCAN", SC),
    "XA": ("XA CORONARY ANGIO", SC),
}


def worklist_item(modality: str, description: str) -> pydicom.Dataset:
    order = OrderIn(
        patient_id="P1",
        patient_name="DOE^JANE",
        accession=f"ACC-{modality}",
        modality=modality,
        study_desc=description,
        sex="F",
        birth_date="19700101",
    )
    out = OrderOut(
        order=order,
        worklist_item_id="0" * 32,
        study_instance_uid=generate_uid(),
        requested_procedure_id="RP1",
        scheduled_procedure_step_id="SPS1",
        scheduled_date="20260105",
        scheduled_time="0930",
        station_aet="DICOMKIT",
        created="2026-01-05T09:00:00+00:00",
    )
    return build_item(out)


def dciodvfy(path: Path) -> list[str]:
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed")
    p = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith(("Error", "Warning"))]


@pytest.mark.parametrize("described", [True, False], ids=["described", "no-description"])
@pytest.mark.parametrize("modality", list(ORDERS))
def test_image_passes_dciodvfy(modality: str, described: bool, tmp_path: Path) -> None:
    description, sop_class = ORDERS[modality]
    item = worklist_item(modality, description if described else "")
    ds = make_image(item)
    path = save_image(ds, tmp_path / f"{modality}.dcm")
    lines = dciodvfy(path)
    for line in lines:
        print(f"{modality} {'described' if described else 'no description'}: {line}")
    assert [ln for ln in lines if ln.startswith("Error")] == []
    assert ds.SOPClassUID == sop_class
    assert ds.Modality == modality
    # The identifiers still come from the worklist item.
    assert ds.StudyInstanceUID == item.StudyInstanceUID
    assert ds.AccessionNumber == f"ACC-{modality}"


def test_ct_pixels_are_hounsfield_units(tmp_path: Path) -> None:
    ds = make_image(worklist_item("CT", "CT HEAD"))
    back = pydicom.dcmread(save_image(ds, tmp_path / "ct.dcm"))
    hu = back.pixel_array * float(back.RescaleSlope) + float(back.RescaleIntercept)
    assert -1000 <= hu.min() < 0  # the dark background is air-like
    assert hu.max() == pytest.approx(1000, abs=1)  # the white label is bone-like
    assert back.BitsStored == 12 and back.pixel_array.max() < 4096
    assert back.BodyPartExamined == "HEAD" and "Laterality" not in back


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("XR CHEST", Anatomy("CHEST", None)),  # unpaired: no Laterality
        ("MR KNEE LEFT", Anatomy("KNEE", "L")),
        ("XR R HAND", Anatomy("HAND", "R")),
        ("XR HAND", Anatomy("HAND", "")),  # paired, side unknown: present and empty
        ("MAMMO SCREENING", Anatomy("BREAST", "")),
        ("CT L-SPINE", Anatomy("LSPINE", None)),
        ("", Anatomy("", "")),  # unknown: Laterality present, empty
    ],
)
def test_anatomy_of(description: str, expected: Anatomy) -> None:
    assert anatomy_of(description) == expected
