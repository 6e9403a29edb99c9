"""The IOD an image is made as, per modality, and the modules that IOD adds to the common ones.

CT, MR and US get their own IODs (PS3.3 A.3, A.4, A.6): their required modules describe
geometry or an acquisition that a synthetic single frame can honestly carry. CR keeps the CR
Image IOD (A.2), whose acquisition attributes are optional. DX, MG, NM and XA are Secondary
Capture (A.8.1), with Conversion Type SYN (synthetic): their IODs require as Type 1 what a
drawn image does not have - DX and MG an Image Laterality of R, L, U or B (no value for "side
not known", which an order such as "XR HAND" leaves open), a Patient Orientation and the
detector's Imager Pixel Spacing; NM its energy windows and detector sequences; XA its
positioner angles and exposure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"  # Ultrasound Image Storage

PIXEL_SPACING_MM = 0.5  # a 512 x 512 image is 256 mm wide: about a head or a knee


@dataclass(frozen=True)
class Iod:
    sop_class: str
    title: str  # the IOD and where the standard defines it
    fill: Callable[[Dataset, bytes], None]  # adds the IOD's own modules and the pixels


def _monochrome(ds: Dataset, data: bytes, bits_allocated: int, bits_stored: int) -> None:
    # Image Pixel module (PS3.3 C.7.6.3): one unsigned grey sample per pixel.
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = data


def _gray8(ds: Dataset, gray: bytes) -> None:
    _monochrome(ds, gray, 8, 8)


def _gray16(ds: Dataset, values: object) -> None:
    import numpy as np

    _monochrome(ds, np.asarray(values, dtype="<u2").tobytes(), 16, 12)


def _slice(ds: Dataset) -> None:
    """Frame of Reference (C.7.4.1) and Image Plane (C.7.6.2) for one axial slice."""
    from pydicom.uid import generate_uid

    ds.FrameOfReferenceUID = generate_uid()  # Type 1
    ds.PositionReferenceIndicator = ""  # Type 2
    ds.PatientPosition = "HFS"  # General Series, Type 2C for CT and MR: head first supine
    half = PIXEL_SPACING_MM * int(ds.Columns) / 2
    ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]  # Type 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]  # Type 1: axial
    ds.ImagePositionPatient = [-half, -half, 0]  # Type 1
    ds.SliceThickness = 5  # Type 2
    ds.SliceLocation = 0


def _numbers(gray: bytes, scale: float, offset: float) -> object:
    import numpy as np

    return np.frombuffer(gray, dtype=np.uint8).astype(np.float64) * scale + offset


def _fill_ct(ds: Dataset, gray: bytes) -> None:
    """CT Image IOD (PS3.3 A.3): CT Image module C.8.2.1 plus the slice geometry."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]  # C.8.2.1.1.1: value 3 AXIAL
    _slice(ds)
    # Stored values 24..2024 with intercept -1024: air -1000 HU up to +1000 HU.
    _gray16(ds, _numbers(gray, 2000 / 255, 24))
    ds.RescaleIntercept = -1024  # Type 1
    ds.RescaleSlope = 1  # Type 1
    ds.RescaleType = "HU"  # Type 1C: Hounsfield units
    ds.KVP = 120  # Type 2
    ds.AcquisitionNumber = 1  # Type 2
    ds.WindowCenter = 0  # VOI LUT (C.11.2): the whole range, like the 8-bit drawing
    ds.WindowWidth = 2000


def _fill_mr(ds: Dataset, gray: bytes) -> None:
    """MR Image IOD (PS3.3 A.4): MR Image module C.8.3.1 plus the slice geometry."""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    _slice(ds)
    _gray16(ds, _numbers(gray, 16, 0))
    ds.ScanningSequence = "SE"  # Type 1: spin echo
    ds.SequenceVariant = "NONE"  # Type 1
    ds.ScanOptions = ""  # Type 2
    ds.MRAcquisitionType = "2D"  # Type 2
    ds.RepetitionTime = 500  # Type 2C (not EP): ms
    ds.EchoTime = 15  # Type 2: ms
    ds.EchoTrainLength = 1  # Type 2
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = 1.5
    ds.WindowCenter = 2040
    ds.WindowWidth = 4080


def _fill_cr(ds: Dataset, gray: bytes) -> None:
    """CR Image IOD (PS3.3 A.2): CR Series (C.8.1.1) and CR Image (C.8.1.2)."""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PatientOrientation = ""  # General Image, Type 2C: no Image Plane module here
    ds.ViewPosition = "PA" if ds.get("BodyPartExamined") == "CHEST" else ""  # CR Series, Type 2
    _gray8(ds, gray)


# Body Part Examined -> US Image Type value 3 (PS3.3 C.8.5.6.1.1 defined terms).
_US_REGION = {
    "ABDOMEN": "ABDOMINAL",
    "LIVER": "ABDOMINAL",
    "KIDNEY": "ABDOMINAL",
    "PELVIS": "PELVIC",
    "BREAST": "BREAST",
    "HEART": "CARDIAC",
    "CHEST": "CHEST",
    "NECK": "NECK",
    "HEAD": "HEAD",
}


def _fill_us(ds: Dataset, gray: bytes) -> None:
    """US Image IOD (PS3.3 A.6): US Image module C.8.5.6, one 2D frame."""
    region = _US_REGION.get(str(ds.get("BodyPartExamined", "")), "")
    # C.8.5.6.1.1: value 3 the examined region, value 4 the mode as a bit map (0001: 2D).
    ds.ImageType = ["ORIGINAL", "PRIMARY", region, "0001"]
    ds.PatientOrientation = ""  # General Image, Type 2C: no Image Plane module here
    _gray8(ds, gray)


def _fill_sc(ds: Dataset, gray: bytes) -> None:
    """Secondary Capture Image IOD (PS3.3 A.8.1): SC Equipment (C.8.6.1) and SC Image."""
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ConversionType = "SYN"  # C.8.6.1 defined term: Synthetic Image (Type 1)
    ds.PatientOrientation = ""  # General Image, Type 2C: no Image Plane module here
    _gray8(ds, gray)


CT = Iod(CT_IMAGE_STORAGE, "CT Image (PS3.3 A.3)", _fill_ct)
MR = Iod(MR_IMAGE_STORAGE, "MR Image (PS3.3 A.4)", _fill_mr)
CR = Iod(CR_IMAGE_STORAGE, "CR Image (PS3.3 A.2)", _fill_cr)
US = Iod(US_IMAGE_STORAGE, "US Image (PS3.3 A.6)", _fill_us)
SC = Iod(SC_IMAGE_STORAGE, "Secondary Capture Image (PS3.3 A.8.1)", _fill_sc)
_BY_MODALITY = {"CT": CT, "MR": MR, "CR": CR, "US": US}


def iod_for(modality: str) -> Iod:
    """The IOD an image for an order of ``modality`` is made as (Secondary Capture when no
    other is made here)."""
    return _BY_MODALITY.get(modality, SC)
