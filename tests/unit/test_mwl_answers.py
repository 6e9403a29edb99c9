"""MWL answers (pacs.match.build_answer) copy the item's elements shallowly where that is
safe: the answers must encode to the same bytes as deep copies, and leave the item alone."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from dicomkit.dicom.worklist import WorklistQuery
from dicomkit.pacs import match
from dicomkit.pacs.mwl import WorklistFolder
from dicomkit.ris.models import OrderIn
from dicomkit.ris.store import OrderStore


def _encode(ds: Dataset, implicit: bool) -> bytes:
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    write_dataset(fp, ds)
    return bytes(fp.getvalue())


def _queries(name: str) -> list[tuple[Dataset, int]]:
    """(query, number of matches) for the one item."""
    full = WorklistQuery().identifier()
    for kw in ("PatientBirthDate", "RequestedProcedureCodeSequence", "OtherPatientIDs"):
        setattr(full, kw, [] if kw.endswith("Sequence") else "")
    return [
        (full, 1),
        (WorklistQuery(patient_name="山田*").identifier(), int(name.startswith("山田"))),
        (WorklistQuery(modality="CT", date="20260101-20260131").identifier(), 1),
    ]


@pytest.mark.parametrize("name", ["DOE^JANE", "Müller^Zoë", "山田^太郎"])
def test_answers_encode_as_deep_copies_would(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = OrderStore(tmp_path / "ris.sqlite3", tmp_path / "wl")
    store.create(OrderIn(patient_id="P1", patient_name=name, accession="A1", modality="CT",
                         study_desc="CT HEAD", scheduled_date="20260105", scheduled_time="0930"))  # fmt: skip
    folder = WorklistFolder(store.worklist_dir)
    for query, n in _queries(name):
        fast = folder.find(query)
        with monkeypatch.context() as m:
            m.setattr(match, "_copy_element", copy.deepcopy)
            deep = folder.find(query)
        assert len(fast) == len(deep) == n
        for a, b in zip(fast, deep, strict=True):
            assert a == b
            for implicit in (True, False):
                assert _encode(a, implicit) == _encode(b, implicit)
            # Changing an answer leaves the cached item (and the next answer) as it was.
            a.PatientName = "CHANGED^NAME"
            assert folder.find(query)[0].PatientName == b.PatientName
