"""Transfer syntax conversion for retrieve (pacs/transcode.py), on pydicom's own files."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom
import pytest

from dicomkit.pacs.transcode import (
    DEFLATED_LE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    CannotTranscode,
    choose_syntax,
    transcode,
)
from tests.conftest import testdata

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG2000 = "1.2.840.10008.1.2.4.91"


@pytest.mark.parametrize(
    ("stored", "accepted", "expected"),
    [
        (JPEG_BASELINE, [JPEG_BASELINE, EXPLICIT_LE], JPEG_BASELINE),  # as stored when accepted
        (JPEG_BASELINE, [IMPLICIT_LE], IMPLICIT_LE),
        (JPEG_BASELINE, [IMPLICIT_LE, EXPLICIT_LE], EXPLICIT_LE),
        (EXPLICIT_LE, [IMPLICIT_LE], EXPLICIT_LE),  # pynetdicom re-encodes by itself
        (DEFLATED_LE, [EXPLICIT_LE], DEFLATED_LE),
        (EXPLICIT_BE, [IMPLICIT_LE], IMPLICIT_LE),
        (EXPLICIT_BE, [EXPLICIT_BE, IMPLICIT_LE], EXPLICIT_BE),
        (JPEG2000, [JPEG_BASELINE], None),  # nothing this PACS can encode into
        (JPEG2000, [], None),
    ],
)
def test_choose_syntax(stored: str, accepted: list[str], expected: str | None) -> None:
    assert choose_syntax(stored, accepted) == expected


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buf.getvalue()))


def test_big_endian_becomes_the_little_endian_twin() -> None:
    # pydicom ships the same MR image in both byte orders.
    big = pydicom.dcmread(testdata("MR_small_bigendian.dcm"))
    little = pydicom.dcmread(testdata("MR_small.dcm"))
    what = transcode(big, EXPLICIT_LE)
    assert "Big Endian" in what
    out = _roundtrip(big)
    assert out.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert out.PixelData == little.PixelData
    assert np.array_equal(out.pixel_array, little.pixel_array)
    assert out.SOPInstanceUID == little.SOPInstanceUID
    assert out.Rows == little.Rows and out.PixelSpacing == little.PixelSpacing


def test_jpeg_ybr_is_decoded_to_rgb_and_keeps_its_uid() -> None:
    path = testdata("SC_rgb_dcmtk_+eb+cy+np.dcm")  # JPEG baseline, YBR_FULL_422
    ds = pydicom.dcmread(path)
    uid = ds.SOPInstanceUID
    expected = pydicom.dcmread(path).pixel_array  # pydicom's decode, as RGB
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    transcode(ds, IMPLICIT_LE)
    out = _roundtrip(ds)
    assert out.file_meta.TransferSyntaxUID == IMPLICIT_LE
    assert out.PhotometricInterpretation == "RGB"
    assert out.PlanarConfiguration == 0
    assert len(out.PixelData) == out.Rows * out.Columns * 3
    assert np.array_equal(out.pixel_array, expected)
    assert out.SOPInstanceUID == uid  # PS3.5 10.1: another syntax, the same instance


def test_jpeg2000_is_decoded() -> None:
    ds = pydicom.dcmread(testdata("JPEG2000.dcm"))
    expected = ds.pixel_array.copy()
    transcode(ds, EXPLICIT_LE)
    assert np.array_equal(_roundtrip(ds).pixel_array, expected)


def test_what_pydicom_cannot_decode_says_why() -> None:
    ds = pydicom.dcmread(testdata("JPEG-lossy.dcm"))  # 12-bit JPEG extended: no decoder here
    try:
        ds.pixel_array  # noqa: B018
    except Exception:
        with pytest.raises(CannotTranscode, match="pydicom cannot decode"):
            transcode(ds, EXPLICIT_LE)
    else:
        pytest.skip("this pydicom decodes 12-bit JPEG extended")


def test_extended_offset_table_goes_with_the_encapsulation() -> None:
    ds = pydicom.dcmread(testdata("SC_rgb_jpeg_dcmtk.dcm"))  # one frame
    ds.ExtendedOffsetTable = b"\x00" * 8
    ds.ExtendedOffsetTableLengths = len(ds.PixelData).to_bytes(8, "little")
    transcode(ds, EXPLICIT_LE)
    assert "ExtendedOffsetTable" not in ds and "ExtendedOffsetTableLengths" not in ds
