"""Index.lookup (the query planner over match_keys) finds exactly what a scan finds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicomkit.pacs.index import LEVELS, Index, InstanceRecord
from dicomkit.pacs.match import compile_query, matches_all
from dicomkit.pacs.qr import flat_of

# (PatientID, PatientName, Accession, StudyDate, study, series, sop): names with case, a
# multi-valued name, the Kelvin sign (folds to ASCII "k") and an eszett (casefolds to "ss").
ROWS = [
    ("P1", "Doe^Jane", "A1", "20240105", "1.1", "1.1.1", "1.1.1.1"),
    ("P1", "Doe^Jane", "A1", "20240105", "1.1", "1.1.1", "1.1.1.2"),
    ("P1", "Doe^Jane", "A2", "20240301", "1.2", "1.2.1", "1.2.1.1"),
    ("P2", "DOE^JOHN\\Roe^Jon", "A3", "2023.12.31", "2.1", "2.1.1", "2.1.1.1"),
    ("P3", "\u212aELLY^ANN", "A4", "20240105", "3.1", "3.1.1", "3.1.1.1"),
    ("P4", "STRA\u00dfE^MAX", "A5", "", "4.1", "4.1.1", "4.1.1.1"),
    ("P5", "smith^bob", "A6\\A7", "20250101", "5.1", "5.1.1", "5.1.1.1"),
]

QUERIES = [
    {"PatientName": "doe*"},
    {"PatientName": "DOE^J*"},
    {"PatientName": "roe*"},
    {"PatientName": "kelly*"},
    {"PatientName": "strasse^max"},
    {"PatientName": "doe^jane"},
    {"PatientName": "D?E*"},
    {"PatientName": "*JOHN"},  # a leading wildcard: no lookup, a scan
    {"PatientID": "P1"},
    {"PatientID": "P1\\P3"},
    {"AccessionNumber": "A1"},
    {"AccessionNumber": "A7"},
    {"AccessionNumber": "A*"},
    {"StudyDate": "20240105"},
    {"StudyDate": "20231231-20240201"},
    {"StudyDate": "-20240101"},
    {"StudyDate": "20240102-"},
    {"StudyInstanceUID": "1.2\\2.1"},
    {"SeriesInstanceUID": "1.1.1"},
    {"SOPInstanceUID": "1.1.1.2"},
    {"PatientName": "doe*", "AccessionNumber": "A2"},
    {"Modality": "CT"},  # not a lookup key: a scan
]


def _fill(index: Index) -> None:
    for pid, name, acc, date, st, se, sop in ROWS:
        values = {
            "PatientID": pid,
            "PatientName": name,
            "AccessionNumber": acc,
            "StudyDate": date,
            "StudyInstanceUID": st,
            "SeriesInstanceUID": se,
            "SOPInstanceUID": sop,
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
            "Modality": "CT",
        }
        assert index.add(InstanceRecord.from_values(values, "1.2.840.10008.1.2.1"), "now")


def _query(keys: dict[str, str]) -> Dataset:
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    ds = Dataset()
    for keyword, value in keys.items():
        tag = tag_for_keyword(keyword)
        ds.add_new(tag, dictionary_VR(tag), value)
    return ds


def _check(index: Index) -> int:
    looked_up = 0
    for keys in QUERIES:
        constraints = compile_query(_query(keys))
        for level in LEVELS:
            every = index.resources(level)
            scan = [r.id for r in every if matches_all(flat_of(r)[0], constraints)]
            found = index.lookup(level, constraints)
            if found is None:
                continue
            looked_up += 1
            got = [r.id for r in found if matches_all(flat_of(r)[0], constraints)]
            assert got == scan, (keys, level)
            assert len(found) <= len(every)
    return looked_up


def test_lookup_finds_what_a_scan_finds(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.sqlite3")
    _fill(index)
    assert _check(index) > 40
    by_name = index.lookup("STUDY", compile_query(_query({"PatientName": "doe*"})))
    assert by_name is not None and len(by_name) == 3  # P1's two studies and P2's
    assert index.lookup("STUDY", compile_query(_query({"PatientName": "*JOHN"}))) is None
    assert index.lookup("STUDY", compile_query(_query({"Modality": "CT"}))) is None
    # A key of a lower level cannot narrow a higher one (a patient has no accession).
    assert index.lookup("PATIENT", compile_query(_query({"AccessionNumber": "A1"}))) is None


@pytest.mark.parametrize("keys", [{"AccessionNumber": "A1"}, {"PatientName": "doe*"}])
def test_an_index_written_before_match_keys_is_filled_at_open(
    tmp_path: Path, keys: dict[str, str]
) -> None:
    path = tmp_path / "index.sqlite3"
    index = Index(path)
    _fill(index)
    index.close()
    with sqlite3.connect(path) as db:  # as an index of the previous version looks
        db.execute("DROP TABLE match_keys")
        db.execute("PRAGMA user_version = 0")
    index = Index(path)
    found = index.lookup("STUDY", compile_query(_query(keys)))
    assert found is not None and found
    assert _check(index) > 40
