"""dicom/dataset.py, the element walker, against pydicom on pydicom's own test files and on
cut and garbage variants of them (property tests), and the File Meta reader."""

from __future__ import annotations

import warnings
from functools import cache
from pathlib import Path

import pydicom.data
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pynetdicom.dsutils import split_dataset

from dicomkit.dicom import dataset

# Files pydicom reads (leniently) and the walker refuses, each for a real reason.
REFUSED = {
    "MR_truncated.dcm": "cut short: (7FE0,0010) at byte 1488 announces 8192 bytes, 62 are",
    "rtplan_truncated.dcm": "cut short",  # inside a sequence
    "SC_rgb_jpeg.dcm": "no valid VR",  # an implicit VR data set under an explicit syntax
    "meta_missing_tsyntax.dcm": "no Transfer Syntax UID",
}


def vr_of(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


@cache
def shipped() -> list[Path]:
    folder = Path(str(pydicom.data.get_testdata_file("CT_small.dcm"))).parent
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix not in (".py", ".json"))


@cache
def part10_files() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in shipped() if p.read_bytes()[128:132] == b"DICM"]


def _pydicom(raw_path: Path) -> list[int] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(raw_path)
            list(ds.iterall())
        return [int(e.tag) for e in ds]
    except Exception:
        return None


def test_walker_agrees_with_pydicom_on_its_test_files() -> None:
    walked = 0
    for path in shipped():
        raw = path.read_bytes()
        if raw[128:132] != b"DICM":
            continue
        want = _pydicom(path)
        try:
            part = dataset.parse_part10(raw, vr_of=vr_of)
        except dataset.Malformed as exc:
            if want is None:
                continue  # neither reads it
            assert path.name in REFUSED, f"{path.name}: {exc}"
            assert REFUSED[path.name] in str(exc)
            continue
        assert want is not None, path.name
        assert [e.tag for e in part.dataset.elements] == want, path.name
        walked += 1
    assert walked >= 60


def test_file_meta_agrees_with_pynetdicom() -> None:
    read = 0
    for name, raw in part10_files():
        try:
            meta = dataset.read_meta(raw)
        except dataset.Malformed:
            continue
        theirs, offset = split_dataset(Path(str(pydicom.data.get_testdata_file(name))))
        assert meta.transfer_syntax == str(theirs.TransferSyntaxUID), name
        assert meta.sop_instance == str(theirs.get("MediaStorageSOPInstanceUID", "")), name
        assert meta.offset == offset, name
        read += 1
    assert read >= 60


def _boundaries(raw: bytes) -> set[int]:
    """Offsets where a cut leaves a whole, shorter data set."""
    part = dataset.parse_part10(raw, vr_of=vr_of)
    ends = {part.meta.offset, len(raw)}
    for e in part.dataset.elements:
        undefined = e.items is not None and bytes(raw[e.offset - 4 : e.offset]) == b"\xff" * 4
        ends.add(e.offset + e.length + (8 if undefined else 0))
    return ends


WHOLE = ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "rtplan.dcm", "SC_rgb_rle.dcm",
         "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_jpeg_ls_lossless.dcm"]  # fmt: skip


@pytest.mark.parametrize("name", WHOLE)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_cut_anywhere_but_between_elements_is_refused(name: str, data: st.DataObject) -> None:
    raw = Path(str(pydicom.data.get_testdata_file(name))).read_bytes()
    meta = dataset.read_meta(raw)
    cut = data.draw(st.integers(meta.offset + 1, len(raw) - 1))
    if cut in _boundaries(raw):
        dataset.parse_part10(raw[:cut], vr_of=vr_of)  # whole, just shorter
    else:
        with pytest.raises(dataset.Malformed):
            dataset.parse_part10(raw[:cut], vr_of=vr_of)


@pytest.mark.parametrize("name", WHOLE)
@settings(max_examples=30, deadline=None)
@given(tail=st.binary(min_size=1, max_size=7))
def test_trailing_garbage_is_refused(name: str, tail: bytes) -> None:
    raw = Path(str(pydicom.data.get_testdata_file(name))).read_bytes()
    with pytest.raises(dataset.Malformed, match="cut short"):
        dataset.parse_part10(raw + tail)


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=300), ts=st.sampled_from([dataset.IMPLICIT_LE, dataset.EXPLICIT_LE,
                                                          dataset.EXPLICIT_BE]))  # fmt: skip
def test_garbage_never_crashes(junk: bytes, ts: str) -> None:
    """Random bytes either walk (as a data set) or raise Malformed: nothing else."""
    try:
        parsed = dataset.parse(junk, ts, vr_of=vr_of)
    except dataset.Malformed:
        return
    for e in parsed.elements:
        assert e.offset + e.length <= len(junk)


def test_deflated_inflates_and_a_cut_stream_is_refused() -> None:
    raw = Path(str(pydicom.data.get_testdata_file("image_dfl.dcm"))).read_bytes()
    part = dataset.parse_part10(raw)
    assert part.dataset.sop_uids()[1]
    with pytest.raises(dataset.Malformed, match="deflated"):
        dataset.parse_part10(raw[: len(raw) - 100])


def test_sop_uids_and_meta_encoding_round_trip() -> None:
    meta = dataset.encode_meta(
        "1.2.840.10008.5.1.4.1.1.2", "1.2.3", dataset.EXPLICIT_LE, "1.2.9", "X"
    )
    m = dataset.read_meta(meta)
    assert (m.sop_class, m.sop_instance, m.transfer_syntax, m.offset) == (
        "1.2.840.10008.5.1.4.1.1.2", "1.2.3", dataset.EXPLICIT_LE, len(meta))  # fmt: skip
    with pytest.raises(dataset.Malformed, match="not a DICOM file"):
        dataset.read_meta(b"hello")


def test_nesting_is_bounded() -> None:
    # 100 nested undefined-length sequences of undefined-length items (implicit VR)
    seq, item = b"\x08\x00\x15\x11\xff\xff\xff\xff", b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    ends = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    deep = (seq + item) * 100 + ends * 100
    with pytest.raises(dataset.Malformed, match="nested"):
        dataset.parse(deep, dataset.IMPLICIT_LE)
    shallow = (seq + item) * 10 + ends * 10
    assert len(dataset.parse(shallow, dataset.IMPLICIT_LE).elements) == 1
