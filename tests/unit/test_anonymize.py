"""The Basic Profile on pydicom's own files: identifying attributes gone or replaced, new
UIDs shared by the files of one study, PatientIdentityRemoved YES, pixels untouched."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from dicomkit.dicom.anonymize import METHOD, anonymize_files
from dicomkit.errors import UsageError


def _study(tmp_path: Path) -> list[Path]:
    """Two CT_small instances of one study and series, and MR_small in another study."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = []
    for n in range(2):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.AccessionNumber = "ACC-ANON"
        ds.InstanceNumber = n + 1
        path = tmp_path / f"ct{n}.dcm"
        ds.save_as(path)
        out.append(path)
    out.append(Path(get_testdata_file("MR_small.dcm")))
    return out


def test_basic_profile_on_pydicom_files(tmp_path: Path) -> None:
    sources = _study(tmp_path / "in")
    originals = [pydicom.dcmread(p) for p in sources]
    report = anonymize_files(sources, tmp_path / "out")
    copies = [pydicom.dcmread(f.output) for f in report.files]
    assert [Path(f.output).name for f in report.files] == [
        "IM00001.dcm",
        "IM00002.dcm",
        "IM00003.dcm",
    ]
    for orig, copy in zip(originals, copies, strict=True):
        assert copy.PatientIdentityRemoved == "YES"
        assert copy.DeidentificationMethod == METHOD
        assert copy.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert copy.PatientName != orig.PatientName and copy.PatientID != orig.PatientID
        if orig.AccessionNumber:
            assert copy.get("AccessionNumber", "") != orig.AccessionNumber
        for uid in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            assert copy[uid].value != orig[uid].value, uid
        assert copy.file_meta.MediaStorageSOPInstanceUID == copy.SOPInstanceUID
        assert copy.SOPClassUID == orig.SOPClassUID  # kept: what the object is
        assert copy.PixelData == orig.PixelData
        assert not any(e.tag.is_private for e in copy)
    ct1, ct2, mr = copies
    # One UID map per call: the two CT instances stay one study and one series.
    assert ct1.StudyInstanceUID == ct2.StudyInstanceUID != mr.StudyInstanceUID
    assert ct1.SeriesInstanceUID == ct2.SeriesInstanceUID
    assert ct1.SOPInstanceUID != ct2.SOPInstanceUID
    assert report.studies[originals[0].StudyInstanceUID] == ct1.StudyInstanceUID
    assert (
        "PatientName" in report.replaced and "PatientBirthDate" in report.removed + report.replaced
    )


def test_separate_calls_get_separate_uids(tmp_path: Path) -> None:
    src = [Path(get_testdata_file("CT_small.dcm"))]
    a = anonymize_files(src, tmp_path / "a").files[0].sop_instance_uid
    b = anonymize_files(src, tmp_path / "b").files[0].sop_instance_uid
    assert a != b  # the old -> new map is not kept between calls


def test_compressed_file_keeps_its_transfer_syntax(tmp_path: Path) -> None:
    src = Path(get_testdata_file("JPEG2000.dcm"))
    orig = pydicom.dcmread(src)
    copy = pydicom.dcmread(anonymize_files([src], tmp_path).files[0].output)
    assert copy.file_meta.TransferSyntaxUID == orig.file_meta.TransferSyntaxUID
    assert copy.PixelData == orig.PixelData and copy.PatientIdentityRemoved == "YES"


def test_not_dicom_and_nothing_are_usage_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    with pytest.raises(UsageError, match="cannot read"):
        anonymize_files([junk], tmp_path / "out")
    with pytest.raises(UsageError, match="no DICOM files"):
        anonymize_files([], tmp_path / "out")
