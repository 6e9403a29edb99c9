"""STOW-RS's one integrity check (pacs/stow.py ``check_part``) over pydicom's own files: it
accepts whole, consistent files, refuses with a Failure Reason anything cut short or
inconsistent, and never raises anything else (a crash would be a 500)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from dicomkit.pacs.stow import CANNOT_UNDERSTAND, DATA_SET_DOES_NOT_MATCH, BadPart, check_part
from tests.conftest import testdata


def pydicom_files() -> list[Path]:
    import pydicom.data

    root = Path(pydicom.data.__file__).parent / "test_files"
    return sorted(root.rglob("*.dcm"))


def test_whole_files_pass_or_fail_with_a_reason_never_crash() -> None:
    accepted = 0
    for path in pydicom_files():
        try:
            check_part(path.read_bytes())
            accepted += 1
        except BadPart as exc:
            assert exc.reason in (CANNOT_UNDERSTAND, DATA_SET_DOES_NOT_MATCH), path
    assert accepted >= 40


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"])
def test_every_cut_inside_the_pixel_data_is_refused(name: str) -> None:
    raw = testdata(name).read_bytes()
    start = raw.rfind(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data
    assert start > 0
    check_part(raw)
    for cut in range(start + 1, len(raw), max(1, (len(raw) - start) // 40)):
        with pytest.raises(BadPart) as err:
            check_part(raw[:cut])
        assert err.value.reason == CANNOT_UNDERSTAND


def test_cuts_anywhere_never_crash() -> None:
    raw = testdata("rtplan.dcm").read_bytes()
    for cut in range(0, len(raw), 7):
        with contextlib.suppress(BadPart):  # refused with a reason is fine; a crash is not
            check_part(raw[:cut])


def test_trailing_bytes_after_an_element_are_refused() -> None:
    raw = testdata("CT_small.dcm").read_bytes()
    with pytest.raises(BadPart, match="cut short"):
        check_part(raw + b"\x08\x00")
