"""`dicomkit store` checks each file whole before proposing anything for it (scu._prepare)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from dicomkit.dicom.scu import FileResult, _prepare
from dicomkit.ris.models import OrderIn
from dicomkit.ris.store import OrderStore
from tests.conftest import testdata


def _error(path: Path) -> str:
    got = _prepare(path)
    assert isinstance(got, FileResult), got
    return got.error


def test_a_worklist_item_is_no_storage_sop_class(tmp_path: Path) -> None:
    store = OrderStore(tmp_path / "ris.db", tmp_path / "wl")
    store.create(OrderIn(patient_id="P1", patient_name="DOE^JANE", accession="A1", modality="CR"))
    wl = next((tmp_path / "wl").glob("*.wl"))
    assert _error(wl).startswith("not a storage SOP class: 1.2.840.10008.5.1.4.31 (Modality")


def test_not_dicom_cut_and_garbage(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert _error(text).startswith("not a DICOM file")
    raw = testdata("CT_small.dcm").read_bytes()
    for name, data in (("cut.dcm", raw[:-1000]), ("tail.dcm", raw + b"xyz")):
        (tmp_path / name).write_bytes(data)
        assert "cut short" in _error(tmp_path / name), name
    from dicomkit.dicom.dataset import read_meta

    (tmp_path / "meta.dcm").write_bytes(raw[: read_meta(raw).offset])  # File Meta alone
    assert "no SOP Class UID (0008,0016) in the data set" in _error(tmp_path / "meta.dcm")


def test_uids_come_from_the_data_set(tmp_path: Path) -> None:
    ds = pydicom.dcmread(testdata("CT_small.dcm"))
    ds.save_as(tmp_path / "x.dcm")
    ds = pydicom.dcmread(tmp_path / "x.dcm")
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "x.dcm")  # written as read: the meta now names another instance
    got = _prepare(tmp_path / "x.dcm")
    assert not isinstance(got, FileResult)
    assert got.sop_instance == ds.SOPInstanceUID and got.meta_differs
