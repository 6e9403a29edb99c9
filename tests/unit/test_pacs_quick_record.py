"""The index's reader of main tags from walked bytes (pacs/index.record_of over
dicom/dataset.py) must give exactly what pydicom gives (read_partial +
InstanceRecord.from_dataset), whichever way it reads them."""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.filereader import read_partial
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dicomkit.dicom import dataset
from dicomkit.pacs import index
from dicomkit.pacs.index import InstanceRecord, _past_main_tags
from dicomkit.pacs.server import _meta, read_record
from tests.conftest import testdata


def _pydicom(raw: bytes) -> tuple[str, object]:
    try:
        head = read_partial(io.BytesIO(raw), stop_when=_past_main_tags)
        ts = str(head.file_meta.get("TransferSyntaxUID", ""))
        return "ok", InstanceRecord.from_dataset(head, ts)
    except Exception as exc:
        return "error", type(exc).__name__


def _quick(raw: bytes) -> tuple[str, object] | None:
    """The walked reader without its pydicom fallback: None where it would fall back."""
    try:
        part = dataset.parse_part10(raw)
    except dataset.Malformed:
        return "error", "Malformed"
    try:
        return "ok", index._record_of(part.dataset, part.meta.transfer_syntax)
    except (index._NotSimple, UnicodeDecodeError, LookupError):
        return None
    except Exception as exc:
        return "error", type(exc).__name__


def _part10(ds: Dataset, ts: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = ts
    bio = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(bio, enforce_file_format=True)
    return bio.getvalue()


def _base() -> Dataset:
    return dcmread(testdata("CT_small.dcm"))


def _latin1(ds: Dataset) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jörg"
    ds.StudyDescription = "Tête  "


def _utf8(ds: Dataset) -> None:
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jörg=山田^太郎"


def _iso2022(ds: Dataset) -> None:
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎"


def _multi_and_padding(ds: Dataset) -> None:
    ds.add_new(0x00200013, "IS", " 0007 ")
    ds.OtherPatientIDs = ["A ", " B", "C"]
    ds.ImageComments = "  hello \\ world  "


def _empty(ds: Dataset) -> None:
    ds.PatientName = ""
    ds.InstanceNumber = None
    ds.Modality = ""


def _sequences(ds: Dataset, undefined: bool = False) -> None:
    inner = Dataset()
    inner.CodeMeaning = "y"
    item = Dataset()
    item.CodeValue = "X"
    item.ConceptCodeSequence = Sequence([inner])
    ds.ProcedureCodeSequence = Sequence([item, Dataset()])
    ds.ReferencedImageSequence = Sequence([])
    if undefined:
        ds["ProcedureCodeSequence"].is_undefined_length = True
        ds["ReferencedImageSequence"].is_undefined_length = True
        item["ConceptCodeSequence"].is_undefined_length = True
        item.is_undefined_length_sequence_item = True


def _private(ds: Dataset) -> None:
    ds.add_new(0x00090010, "LO", "PRIV")
    ds.add_new(0x00091001, "UN", b"\x01\x02")


def _no_sop_uid(ds: Dataset) -> None:
    del ds.SOPInstanceUID


VARIANTS: dict[str, Callable[[Dataset], None]] = {
    "plain": lambda ds: None,
    "latin1": _latin1,
    "utf8": _utf8,
    "iso2022": _iso2022,
    "multi": _multi_and_padding,
    "empty": _empty,
    "sequences": _sequences,
    "undefined-length sequences": lambda ds: _sequences(ds, undefined=True),
    "private": _private,
    "no SOP Instance UID": _no_sop_uid,
}


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_quick_reader_agrees_with_pydicom(variant: str, ts: str) -> None:
    ds = copy.deepcopy(_base())
    VARIANTS[variant](ds)
    raw = _part10(ds, ts)
    if variant.startswith("undefined"):
        assert b"\xfe\xff\xdd\xe0" in raw  # a sequence delimiter really is there
    assert _quick(raw) == _pydicom(raw)


@pytest.mark.filterwarnings("ignore::UserWarning")  # invalid values in some test files
def test_quick_reader_agrees_on_pydicoms_test_files() -> None:
    quick = 0
    for name in get_testdata_files():
        path = Path(name)
        if not path.is_file():
            continue
        raw = path.read_bytes()
        if raw[128:132] != b"DICM":
            continue
        got = _quick(raw)
        if got is not None and got[0] == "ok":
            quick += 1
            assert got == _pydicom(raw), name
    assert quick > 50  # most plain files take the quick path


@pytest.mark.parametrize(
    ("name", "ts"),
    [
        ("MR_small_bigendian.dcm", ExplicitVRBigEndian),
        ("image_dfl.dcm", DeflatedExplicitVRLittleEndian),
    ],
)
def test_big_endian_and_deflated_agree(name: str, ts: str) -> None:
    raw = Path(get_testdata_file(name)).read_bytes()
    assert dcmread(io.BytesIO(raw)).file_meta.TransferSyntaxUID == ts
    assert read_record(raw) == _pydicom(raw)[1]


def test_truncated_or_garbage_bytes_never_mislead() -> None:
    """A cut file is refused, unless the cut falls between two elements: then it is a
    shorter data set, read exactly as pydicom reads it."""
    raw = _part10(_base(), ExplicitVRLittleEndian)
    refused = 0
    for cut in range(128, len(raw), 37):
        try:
            got = read_record(raw[:cut])
        except (dataset.Malformed, index.MissingIdentifier):
            refused += 1
            continue
        assert got == _pydicom(raw[:cut])[1], cut
    assert refused > 0.9 * len(range(128, len(raw), 37))
    with pytest.raises(dataset.Malformed):
        read_record(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    with pytest.raises(dataset.Malformed):
        read_record(b"not dicom")


@pytest.mark.parametrize(
    "sop_instance",
    ["1.2.3", "1.2.34", "1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345678901"],
)
@pytest.mark.parametrize(
    "ts", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, "1.2.840.10008.1.2.4.50"]
)
def test_file_meta_is_pynetdicoms(sop_instance: str, ts: str) -> None:
    """The stored file's meta is byte for byte what event.encoded_dataset() writes."""
    from pynetdicom.dsutils import create_file_meta, encode_file_meta

    for sop_class in ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.20"):
        want = encode_file_meta(
            create_file_meta(
                sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=ts
            )
        )
        assert _meta(sop_class, sop_instance, ts) == b"\0" * 128 + b"DICM" + want
