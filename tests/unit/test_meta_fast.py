"""The fast File Meta reader agrees with pydicom on every file pydicom ships, or defers to it."""

from __future__ import annotations

from pathlib import Path

import pydicom.data
from pynetdicom.dsutils import split_dataset

from dicomkit.dicom.scu import read_meta_fast


def shipped_files() -> list[Path]:
    folder = Path(str(pydicom.data.get_testdata_file("CT_small.dcm"))).parent
    return sorted(p for p in folder.iterdir() if p.is_file())


def test_agrees_with_pydicom_or_defers() -> None:
    read = 0
    for f in shipped_files():
        fast = read_meta_fast(f)
        if fast is None:
            continue  # no DICM prefix, or something only pydicom should judge
        meta, offset = split_dataset(f)
        slow = (
            str(meta.get("MediaStorageSOPClassUID", "") or ""),
            str(meta.get("MediaStorageSOPInstanceUID", "") or ""),
            str(meta.get("TransferSyntaxUID", "") or ""),
            offset,
        )
        assert fast == slow, f.name
        read += 1
    assert read >= 50  # the fast path is really taken, not always deferred


def test_defers_on_non_dicom_and_truncated(tmp_path: Path) -> None:
    txt = tmp_path / "a.txt"
    txt.write_text("hello")
    assert read_meta_fast(txt) is None
    src = Path(str(pydicom.data.get_testdata_file("CT_small.dcm"))).read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(src[:150])  # inside the File Meta Information
    assert read_meta_fast(cut) is None
