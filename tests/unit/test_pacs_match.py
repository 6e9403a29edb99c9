"""C-FIND matching rules (PS3.4 C.2.2.2) on flat records, without a network."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from dicomkit.pacs.match import build_answer, compile_query, flatten, matches_all, norm_tm


def _item() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Zoë"
    ds.PatientID = "P1"
    ds.AccessionNumber = "ACC-1"
    ds.PatientSex = ""
    ds.ModalitiesInStudy = ["CT", "MR"]
    sps1, sps2 = Dataset(), Dataset()
    sps1.Modality, sps1.ScheduledProcedureStepStartDate = "CT", "20260105"
    sps1.ScheduledProcedureStepStartTime = "093000"
    sps2.Modality, sps2.ScheduledProcedureStepStartDate = "MR", "20260301"
    sps2.ScheduledProcedureStepStartTime = "1400"
    ds.ScheduledProcedureStepSequence = [sps1, sps2]
    return ds


def _query(**keys: object) -> Dataset:
    q = Dataset()
    for k, v in keys.items():
        if k == "sps":
            item = Dataset()
            for sk, sv in dict(v).items():  # type: ignore[call-overload]
                setattr(item, sk, sv)
            q.ScheduledProcedureStepSequence = [item]
        else:
            setattr(q, k, v)
    return q


@pytest.mark.parametrize(
    ("keys", "hit"),
    [
        ({}, True),  # universal
        ({"PatientID": ""}, True),  # return key only
        ({"PatientID": "P1"}, True),
        ({"PatientID": "P2"}, False),
        ({"PatientID": "p1"}, False),  # only PN is case-insensitive
        ({"PatientName": "müller^zoë"}, True),  # PN case-insensitive, as Orthanc
        ({"PatientName": "Mü*"}, True),
        ({"PatientName": "M?ller^*"}, True),
        ({"PatientName": "*"}, True),  # a lone * is universal
        ({"PatientName": "Mu*"}, False),
        ({"AccessionNumber": "ACC-?"}, True),
        ({"AccessionNumber": "ACC-??"}, False),
        ({"PatientSex": "F"}, False),  # a key never matches an empty value
        ({"ModalitiesInStudy": "MR"}, True),  # any value of a multi-valued attribute
        ({"ModalitiesInStudy": ["PT", "MR"]}, True),  # list of values: any of them
        ({"sps": {"Modality": "MR"}}, True),  # sequence matching: any item
        ({"sps": {"Modality": "MR", "ScheduledProcedureStepStartDate": "20260105"}}, False),
        ({"sps": {"ScheduledProcedureStepStartDate": "20260101-20260131"}}, True),
        ({"sps": {"ScheduledProcedureStepStartDate": "20260401-"}}, False),
        ({"sps": {"ScheduledProcedureStepStartDate": "-20260105"}}, True),
        ({"sps": {"ScheduledProcedureStepStartTime": "0930"}}, True),  # 093000 == 0930
        ({"sps": {"ScheduledProcedureStepStartTime": "1300-1500"}}, True),
        ({"sps": {"ScheduledProcedureStepStartTime": "1500-"}}, False),
        ({"sps": {}}, True),  # an empty item asks for the sequence, matches all
    ],
)
def test_rules(keys: dict[str, object], hit: bool) -> None:
    assert matches_all(flatten(_item()), compile_query(_query(**keys))) is hit


def test_exact_keys_are_marked_for_index_lookup() -> None:
    c = compile_query(_query(AccessionNumber="ACC-1", PatientName="X", PatientID="P*"))
    exact = {hex(x.tag): x.exact for x in c}
    assert exact == {"0x80050": ("ACC-1",), "0x100010": None, "0x100020": None}


def test_answer_holds_only_the_requested_keys() -> None:
    q = _query(PatientName="", PatientBirthDate="", sps={"Modality": "MR"})
    out = build_answer(_item(), q)
    assert [e.keyword for e in out] == [
        "SpecificCharacterSet",
        "PatientName",
        "PatientBirthDate",
        "ScheduledProcedureStepSequence",
    ]
    assert out.PatientBirthDate in ("", None)  # zero-length: asked for, not in the item
    # Inside a keyed sequence only the matching items come back, with only the keys asked.
    assert [s.Modality for s in out.ScheduledProcedureStepSequence] == ["MR"]
    assert [e.keyword for e in out.ScheduledProcedureStepSequence[0]] == ["Modality"]


def test_time_normalisation() -> None:
    assert norm_tm("09") == norm_tm("0900") == norm_tm("090000") == "090000.000000"
    assert norm_tm("09:30:15.5") == "093015.500000"
