"""Differential test: the same worklist items and the same MWL queries give the same matches
from Orthanc (native engine) and from the embedded PACS. Every matching rule of PS3.4
C.2.2.2 appears at least once: single value, universal, wildcards * and ?, date and time
ranges (closed and open), sequence matching inside ScheduledProcedureStepSequence, PN case,
character sets, and combinations."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from dicomkit.dicom import worklist
from dicomkit.ris.models import OrderIn
from dicomkit.ris.store import OrderStore
from tests.conftest import Lab, start_lab, stop_lab

pytestmark = pytest.mark.orthanc

SPS = "ScheduledProcedureStepSequence"

ORDERS = [
    # accession, patient id, name, modality, date, time, sex, station
    ("D-01", "P01", "DOE^JANE", "CR", "20260105", "0930", "F", "DICOMKIT"),
    ("D-02", "P02", "DOE^JOHN", "CT", "20260105", "1400", "M", "DICOMKIT"),
    ("D-03", "P03", "Doe^Jane", "MR", "20260110", "0800", "", "MR1"),
    ("D-04", "P04", "Müller^Zoë", "CR", "20260115", "1015", "F", "DICOMKIT"),
    ("D-05", "P05", "山田^太郎", "CT", "20260131", "2330", "M", "CT1"),
    ("D-06", "P06", "SMITH^ANNA", "US", "20260201", "0000", "F", "US1"),
    ("D-07", "P07", "SMYTHE^BOB", "DX", "20251231", "1200", "", "DICOMKIT"),
    ("D-08", "P01", "DOE^JANE", "MR", "20260301", "0915", "F", "MR1"),
    ("D-09", "P09", "O'NEIL^MARY", "MG", "20260105", "0930", "F", "MG1"),
    ("D-10", "P10", "LEE^SAM", "CR", "20260420", "1600", "O", "DICOMKIT"),
    ("ACC-100", "P11", "NGUYEN^AN", "CT", "20260110", "1100", "M", "CT1"),
    ("ACC-101", "P12", "NGUYEN^BAO", "CT", "20260111", "1100", "M", "CT2"),
]


def _sq(**keys: str) -> list[Dataset]:
    item = Dataset()
    for k, v in keys.items():
        setattr(item, k, v)
    return [item]


# (description, matching keys); every query also asks for AccessionNumber as a return key.
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("universal: no keys", {}),
    ("single value: accession", {"AccessionNumber": "D-04"}),
    ("single value: no match", {"AccessionNumber": "NOPE"}),
    ("single value: patient id shared by two orders", {"PatientID": "P01"}),
    ("single value: exact name", {"PatientName": "DOE^JANE"}),
    ("PN: other case", {"PatientName": "doe^jane"}),
    ("wildcard *: prefix", {"PatientName": "DOE*"}),
    ("wildcard *: suffix", {"PatientName": "*^JANE"}),
    ("wildcard ?: one character", {"PatientName": "SM?TH*"}),
    ("wildcard ? and *", {"PatientName": "SM?TH?^*"}),
    ("lone * is universal", {"PatientName": "*"}),
    ("wildcard on accession", {"AccessionNumber": "ACC-10*"}),
    ("UTF-8 name", {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "Müller^Zoë"}),
    ("UTF-8 wildcard", {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "山田*"}),
    ("single value: sex", {"PatientSex": "F"}),
    ("sequence: modality", {SPS: _sq(Modality="CT")}),
    ("sequence: modality wildcard", {SPS: _sq(Modality="C?")}),
    ("sequence: station AE", {SPS: _sq(ScheduledStationAETitle="MR1")}),
    ("sequence: station AE wildcard", {SPS: _sq(ScheduledStationAETitle="CT*")}),
    ("sequence: single date", {SPS: _sq(ScheduledProcedureStepStartDate="20260105")}),
    ("date range", {SPS: _sq(ScheduledProcedureStepStartDate="20260101-20260131")}),
    ("date range: open start", {SPS: _sq(ScheduledProcedureStepStartDate="-20260105")}),
    ("date range: open end", {SPS: _sq(ScheduledProcedureStepStartDate="20260201-")}),
    ("time range", {SPS: _sq(ScheduledProcedureStepStartTime="0900-1200")}),
    ("time range: open end", {SPS: _sq(ScheduledProcedureStepStartTime="1400-")}),
    (
        "sequence: two keys in one item",
        {SPS: _sq(Modality="CT", ScheduledProcedureStepStartDate="20260110-20260131")},
    ),
    ("sequence: empty item is universal", {SPS: _sq()}),
    (
        "top-level and sequence keys together",
        {"PatientName": "DOE*", SPS: _sq(Modality="MR")},
    ),
    ("sequence: no match", {SPS: _sq(Modality="PT")}),
]


def _identifier(keys: dict[str, Any]) -> Dataset:
    ds = Dataset()
    for k, v in keys.items():
        setattr(ds, k, v)
    ds.AccessionNumber = keys.get("AccessionNumber", "")
    if "PatientName" not in keys:
        ds.PatientName = ""
    if SPS not in keys:
        ds.ScheduledProcedureStepSequence = _sq(Modality="")
    return ds


def _matches(host: str, port: int, aet: str, query: Dataset) -> list[str]:
    from pynetdicom import AE

    ae = AE(ae_title="DICOMKIT")
    ae.add_requested_context(worklist.MWL_FIND_SOP_CLASS)
    assoc = ae.associate(host, port, ae_title=aet)
    assert assoc.is_established, f"no association with {aet}@{host}:{port}"
    out = []
    try:
        for status, ds in assoc.send_c_find(query, worklist.MWL_FIND_SOP_CLASS):
            assert status is not None and "Status" in status, "association lost"
            if status.Status in (0xFF00, 0xFF01) and ds is not None:
                out.append(str(ds.AccessionNumber))
            else:
                assert status.Status == 0x0000, f"C-FIND failed: 0x{status.Status:04X}"
    finally:
        assoc.release()
    return sorted(out)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worklist items, written by the RIS's own code (OrderStore)."""
    folder = tmp_path_factory.mktemp("items")
    store = OrderStore(folder / "ris.sqlite3", folder / "wl")
    for acc, pid, name, mod, date, time, sex, station in ORDERS:
        store.create(
            OrderIn(patient_id=pid, patient_name=name, accession=acc, modality=mod,
                    study_desc=f"{mod} EXAM", scheduled_date=date, scheduled_time=time,
                    sex=sex or None, station_aet=station)
        )  # fmt: skip
    return folder / "wl"


@pytest.fixture(scope="module")
def labs(
    tmp_path_factory: pytest.TempPathFactory, items: Path
) -> Iterator[dict[str, tuple[Lab, int]]]:
    started: list[Lab] = []
    try:
        native = start_lab(tmp_path_factory.mktemp("diff-native"), "native")
        started.append(native)
        embedded = start_lab(tmp_path_factory.mktemp("diff-embedded"), "embedded")
        started.append(embedded)
        for lab in started:
            for f in items.glob("*.wl"):
                shutil.copy(f, lab.cfg.worklist_dir / f.name)
        # Orthanc serves the worklist on its DICOM port; the embedded PACS on its own MWL port.
        yield {
            "native": (native, native.cfg.dicom_port),
            "embedded": (embedded, embedded.cfg.mwl_port),
        }
    finally:
        for lab in started:
            stop_lab(lab)


def test_enough_queries_cover_the_rules() -> None:
    assert len(QUERIES) >= 20


@pytest.mark.parametrize(("what", "keys"), QUERIES, ids=[q[0] for q in QUERIES])
def test_same_matches_as_orthanc(
    labs: dict[str, tuple[Lab, int]], what: str, keys: dict[str, Any]
) -> None:
    got = {
        name: _matches(lab.cfg.host, port, lab.cfg.pacs_aet, _identifier(keys))
        for name, (lab, port) in labs.items()
    }
    assert got["embedded"] == got["native"], f"{what}: {got}"
    if "no match" not in what:
        assert got["native"], f"{what}: matches nothing, so agreement proves little"
