"""Order validation against DICOM VR rules (PS3.5 6.2)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dicomkit.dicom import vr
from dicomkit.ris.models import OrderIn

GOOD = {
    "patient_id": "P123",
    "patient_name": "DOE^JANE",
    "accession": "ACC-1001",
    "modality": "CR",
    "study_desc": "XR CHEST",
}


def errors_of(**changes: object) -> dict[str, str]:
    body = {**GOOD, **changes}
    try:
        OrderIn(**body)  # type: ignore[arg-type]
    except ValidationError as exc:
        return {".".join(str(p) for p in e["loc"]): e["msg"] for e in exc.errors()}
    return {}


def test_classic_tutorial_order_is_valid() -> None:
    o = OrderIn(**GOOD)  # type: ignore[arg-type]
    assert o.accession == "ACC-1001"
    assert o.modality == "CR"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("accession", "A" * 17, "SH allows at most 16"),
        (
            "accession",
            "../../x",
            "",
        ),  # allowed characters, but never used as a path (see store tests)
        ("accession", "ACC\\1", "backslash"),
        ("accession", "ACC\x001", "control character"),
        ("accession", "ACCÉ", "ASCII"),
        ("accession", "   ", "required"),
        ("patient_id", "P" * 65, "LO allows at most 64"),
        ("study_desc", "D" * 65, "LO allows at most 64"),
        ("patient_name", "A^B^C^D^E^F", "more than 5"),
        ("patient_name", "X" * 65, "PN allows 64"),
        ("patient_name", "A=B=C=D", "more than 3"),
        ("patient_name", "DOE\nJANE", "control character"),
        ("modality", "XRAY", "not a DICOM modality"),
        ("modality", "c-r", "upper-case"),
        ("birth_date", "2026-01-01", "YYYYMMDD"),
        ("birth_date", "20260230", "not a calendar date"),
        ("scheduled_time", "2561", "not a time of day"),
        ("sex", "X", "defined terms"),
        ("station_aet", "A" * 17, "AE allows at most 16"),
        ("nonsense", "1", "Extra inputs"),
    ],
)
def test_bad_fields_are_named(field: str, value: str, fragment: str) -> None:
    errs = errors_of(**{field: value})
    if field == "accession" and value == "../../x":
        assert errs == {}
        return
    assert field in errs, errs
    assert fragment in errs[field]


def test_boundaries_are_exact() -> None:
    assert errors_of(accession="A" * 16) == {}
    assert "accession" in errors_of(accession="A" * 17)
    assert errors_of(study_desc="D" * 64) == {}
    assert "study_desc" in errors_of(study_desc="D" * 65)


def test_non_ascii_names_are_allowed_and_flagged_for_utf8() -> None:
    for name in ("Müller^Zoë", "山田^太郎", "Yamada^Tarou=山田^太郎=やまだ^たろう"):
        assert errors_of(patient_name=name) == {}
        assert vr.needs_utf8(name)
    assert not vr.needs_utf8("DOE^JANE")


def test_modality_is_normalised_to_upper_case() -> None:
    assert OrderIn(**{**GOOD, "modality": "ct"}).modality == "CT"  # type: ignore[arg-type]


def test_date_ranges() -> None:
    assert vr.check_date_range("20260101-20261231") == "20260101-20261231"
    assert vr.check_date_range("-20261231") == "-20261231"
    assert len(vr.check_date_range("today")) == 8
    with pytest.raises(ValueError):
        vr.check_date_range("-")
    with pytest.raises(ValueError):
        vr.check_date_range("2026-01-01")
